"""A whole assistant dialog over real HTTP, against the local Kustomer stub.

    python examples/full_dialog.py          (or: make run)

It starts the stub (``assistant_flow.testing.KustomerStub``) on a free loopback port, does
what Kustomer's Core SDK does in a browser with ``StubClient`` (``initAssistant``,
``createConversation``, the events), and drives the conversation with
``Flow(transport=HTTPTransport(...))``: the customer is greeted with quick replies, picks one,
gets a knowledge-base deflection, opens an article, asks for a person, is handed to an agent
(the events route delivers ``onAssistantEnded``, forwarded with ``flow.dispatch``) and writes
to the agent. It prints the transcript and, for every customer message, the request the stub
received. The stub checks each message the way the library promises to build it; the script
exits non-zero if the stub refuses one, or if what it received is not what the dialog expects.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from assistant_flow import AssistantFlowError, Flow, HTTPTransport, SentMessage, State
from assistant_flow.testing import KustomerStub, StubClient

ASSISTANT = "asst_support"  # the assistant shipped with the stub (testing/assistants/support.yaml)
CUSTOMER = "cust_demo_1"
MESSAGE_ROUTES = ("assistant_messages", "messages")

Say = Callable[[str], None]


@dataclass
class DialogRun:
    """What happened: the message requests the stub received, the events, the final state."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    state: State = State.INIT

    @property
    def sent(self) -> list[dict[str, Any]]:
        """The JSON bodies of the customer messages, as the stub received them."""
        return [request["body"] for request in self.requests]


def indented(data: object) -> str:
    """JSON, indented under the transcript line it belongs to."""
    text = json.dumps(data, indent=2, ensure_ascii=False)
    return "\n".join(f"      {line}" for line in text.splitlines())


def template_line(message: dict[str, Any]) -> str:
    """An assistant message as the transcript shows it: text, then buttons or articles."""
    template = message.get("meta", {}).get("template", {})
    line = str(template.get("body") or message.get("body"))
    if isinstance(template.get("actions"), list):
        line += "  " + " ".join(f"[{a['displayText']}]" for a in template["actions"])
    for article in message.get("meta", {}).get("articles", []):
        line += f"  [{article['title']}]"
    return line


def run(say: Say = lambda line: None) -> DialogRun:
    """Play the dialog against a fresh stub, narrating through ``say``."""
    result = DialogRun()
    with (
        KustomerStub() as stub,
        StubClient(stub.url, stub.api_key) as core,
        HTTPTransport(stub.url, api_key=stub.api_key, customer_id=CUSTOMER) as transport,
    ):
        flow = Flow(transport=transport)
        say(f"Kustomer stub on {stub.url}; the customer's messages go there over HTTP\n")

        say("1. initAssistant returns the greeting, the conversation is created; nothing sent yet")
        init = core.init_assistant(ASSISTANT)
        session = core.create_session(CUSTOMER, "Cannot log in", assistant=ASSISTANT, lang="en")
        conversation_id = session["conversationId"]
        conv = flow.conversation(conversation_id)
        conv.start_assistant(init)
        for greeting in init["initialMessages"]:
            say(f"  assistant > {template_line(greeting)}")
        cursor = 0

        def forward_events() -> None:
            """Poll the events route and hand each event to the flow, as the Core SDK would."""
            nonlocal cursor
            page = core.events(conversation_id, after=cursor, wait=5)
            cursor = page.next
            for event in page.events:
                result.events.append(event.name)
                flow.dispatch(event.name, event.payload)
                if event.name == "onMessageReceived":
                    who = "agent    " if event.payload["sentBy"]["type"] == "user" else "assistant"
                    say(f"  {who} > {template_line(event.payload)}")
                else:
                    say(f"  event     > {event.name} {json.dumps(event.payload)}")

        def customer(sent: SentMessage) -> None:
            """Print what the customer said and the request the stub received for it."""
            [request] = [r for r in stub.requests() if r["route"] in MESSAGE_ROUTES][-1:]
            result.requests.append(request)
            say(f"  customer  > {sent.body}    (state now: {conv.state})")
            key = "with" if "idempotency-key" in request["headers"] else "WITHOUT"
            route = f"{request['method']} {request['path']}"
            say(f"    {route} -> {request['status']} ({key} Idempotency-Key)")
            say(indented(request["body"]))

        say("\n2. The customer taps a button: the first reply carries initAssistantPayload")
        customer(conv.choose("Can't log in"))

        say("\n3. The assistant deflects to two articles; the customer opens one and answers")
        forward_events()
        conv.visit_article("kb_reset")
        say("  (the customer opens 'Reset your password')")
        customer(conv.choose("No, I need a person"))  # carries lastDeflection, visits counted

        say("\n4. The assistant hands over: the events route delivers onAssistantEnded")
        forward_events()
        say(f"  (state now: {conv.state})")

        say("\n5. Messages to the agent go to the plain route with isInAssistantMode: false")
        customer(conv.send_message("Hi, I still cannot log in after resetting my password."))
        stub.agent_says(conversation_id, "Hi, I am Sam from support. Let me check your account.")
        forward_events()
        result.state = conv.state
    return result


def problems(result: DialogRun) -> list[str]:
    """What is off in a run: wrong routes, statuses or lifecycle fields (empty when all is well)."""
    found: list[str] = []
    routes = [request["route"] for request in result.requests]
    if routes != ["assistant_messages", "assistant_messages", "messages"]:
        found.append(f"messages went to {routes}")
    if any(request["status"] != 201 for request in result.requests):
        found.append("a message was not accepted with 201")
    modes = [body.get("isInAssistantMode") for body in result.sent]
    if modes != [True, True, False]:
        found.append(f"isInAssistantMode was {modes}")
    if ["initAssistantPayload" in body for body in result.sent] != [True, False, False]:
        found.append("initAssistantPayload was not on the first reply only")
    if ["lastDeflection" in body for body in result.sent] != [False, True, False]:
        found.append("lastDeflection was not on the reply after the deflection only")
    if "onAssistantEnded" not in result.events or result.state != State.ENDED:
        found.append("the assistant did not end")
    return found


def main() -> int:
    """Run the dialog, print the transcript; 0 when everything went as expected."""
    # The flow logs each transition and send; this demo prints its own transcript instead.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    print("assistant_flow: a full Kustomer assistant dialog over HTTP, against the local stub\n")
    try:
        result = run(say=print)
    except AssistantFlowError as error:
        print(f"\nThe dialog failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    wrong = problems(result)
    for problem in wrong:
        print(f"OFF: {problem}", file=sys.stderr)
    if wrong:
        return 1
    print(
        f"\n{len(result.requests)} messages sent over HTTP and accepted by the stub, "
        "each with the lifecycle fields set by the flow."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
