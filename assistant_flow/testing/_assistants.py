"""Conversational assistants for the stub, read from a YAML file and checked on load.

The file maps assistant ids to dialogs of nodes (the shipped default is
``assistants/support.yaml``, beside this module)::

    assistants:
      asst_support:
        dialog: dlg_welcome          # the dialog id initAssistant reports
        start: welcome               # the node that greets
        lang: en_us                  # optional, the messages' lang
        attributes: {publicName: Ada}
        nodes:
          welcome:
            template: quick_replies  # text (the default), quick_replies, mll or deflection
            body: What can I do for you?
            quick_replies: [{displayText: Billing, value: billing}]
            next: {billing: billing} # payload -> node
            default: handoff         # free text, or a payload with no `next`
          handoff: {body: Passing you to a person., end: handoff}

``mll`` nodes carry a tree (``[{id, displayName, children}]``), ``deflection`` nodes carry
``articles`` (``id``, ``version``, ``title``, ``url``, ``lang``). ``then`` moves on to another
node without waiting for the customer. ``end: handoff`` ends the assistant
(``onAssistantEnded``); ``end: conversation`` also ends the conversation. Every mistake is
reported with the file, the assistant, the node and the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from .. import _yaml
from .._exceptions import InvalidInputError

__all__ = ["DEFAULT_ASSISTANTS", "Assistant", "Node", "load_assistants"]

DEFAULT_ASSISTANTS = "support.yaml"
"""The shipped assistant file (in ``assistant_flow/testing/assistants/``)."""

_TEMPLATES = ("text", "quick_replies", "mll", "deflection")
_ENDS = ("handoff", "conversation")
_NODE_KEYS = frozenset(
    {"template", "body", "quick_replies", "mll", "articles", "next", "default", "then", "end"}
)
_ASSISTANT_KEYS = frozenset({"dialog", "start", "lang", "attributes", "nodes"})
_ARTICLE_KEYS = ("id", "version", "title", "url", "lang")


@dataclass(frozen=True, slots=True)
class Node:
    """One step of a dialog: what the assistant says, and where the customer's answer leads."""

    id: str
    template: dict[str, Any]
    """The Kustomer template (``meta.template``) of the message this node sends."""
    articles: tuple[dict[str, str], ...] = ()
    """``meta.articles`` of a deflection node."""
    next: Mapping[str, str] = field(default_factory=dict)
    default: str | None = None
    then: str | None = None
    end: Literal["handoff", "conversation"] | None = None

    @property
    def offered(self) -> frozenset[str]:
        """The ``payload`` values this node's quick replies or mll tree offer."""
        actions = self.template.get("actions")
        if isinstance(actions, list):
            return frozenset(action["value"] for action in actions)
        if isinstance(actions, dict):
            return frozenset(_tree_ids(actions["tree"]["children"]))
        return frozenset()

    def answer(self, payload: str | None) -> str | None:
        """The node a customer's answer leads to (``None``: ask this node again)."""
        if payload is not None and payload in self.next:
            return self.next[payload]
        return self.default


@dataclass(frozen=True, slots=True)
class Assistant:
    """A conversational assistant: its ids, attributes and dialog nodes."""

    id: str
    dialog: str
    start: str
    nodes: Mapping[str, Node]
    lang: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def chain(self, node_id: str) -> list[Node]:
        """``node_id`` and the nodes its ``then`` leads to, in order (acyclic: checked on load)."""
        chain = [self.nodes[node_id]]
        while chain[-1].then is not None:
            chain.append(self.nodes[chain[-1].then])
        return chain

    @property
    def greeting(self) -> list[Node]:
        """The nodes initAssistant shows before the customer says anything."""
        return self.chain(self.start)

    @property
    def first_node(self) -> str:
        """The node the customer's first reply answers (``node`` in initAssistant's answer)."""
        return self.greeting[-1].id


def _tree_ids(children: list[dict[str, Any]]) -> list[str]:
    ids: list[str] = []
    for child in children:
        ids.append(child["id"])
        ids.extend(_tree_ids(child.get("children", [])))
    return ids


class _Reader:
    """Checks one file, building error messages that name the file, assistant and node."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str, path: str) -> InvalidInputError:
        return InvalidInputError(f"{self.source}: {where}: {problem}", field=path)

    def text(self, value: object, where: str, key: str, path: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(where, f"`{key}` must be a non-empty string", f"{path}.{key}")
        return value

    def assistants(self, data: object) -> dict[str, Assistant]:
        if not isinstance(data, dict) or not isinstance(data.get("assistants"), dict):
            raise self.fail(
                "the file",
                "expected a mapping with an `assistants` mapping at the top",
                "assistants",
            )
        found = data["assistants"]
        if not found:
            raise self.fail("the file", "`assistants` is empty; define at least one", "assistants")
        return {
            self.text(key, "the file", "assistants", "assistants"): self.assistant(key, value)
            for key, value in found.items()
        }

    def assistant(self, assistant_id: str, data: object) -> Assistant:
        where = f"assistant {assistant_id!r}"
        path = f"assistants.{assistant_id}"
        if not isinstance(data, dict):
            raise self.fail(where, "expected a mapping", path)
        unknown = sorted(set(data) - _ASSISTANT_KEYS, key=str)
        if unknown:
            keys = ", ".join(sorted(_ASSISTANT_KEYS))
            raise self.fail(
                where, f"unknown key `{unknown[0]}`; use {keys}", f"{path}.{unknown[0]}"
            )
        dialog = self.text(data.get("dialog"), where, "dialog", path)
        start = self.text(data.get("start"), where, "start", path)
        lang = data.get("lang")
        if lang is not None:
            lang = self.text(lang, where, "lang", path)
        attributes = data.get("attributes", {})
        if not isinstance(attributes, dict):
            raise self.fail(where, "`attributes` must be a mapping", f"{path}.attributes")
        raw_nodes = data.get("nodes")
        if not isinstance(raw_nodes, dict) or not raw_nodes:
            raise self.fail(where, "`nodes` must be a non-empty mapping", f"{path}.nodes")
        nodes = {
            str(node_id): self.node(str(node_id), raw, where, f"{path}.nodes.{node_id}")
            for node_id, raw in raw_nodes.items()
        }
        if start not in nodes:
            raise self.fail(where, f"`start` names no node: {start!r}", f"{path}.start")
        for node in nodes.values():
            self.links(node, nodes, where, f"{path}.nodes.{node.id}")
        assistant = Assistant(assistant_id, dialog, start, nodes, lang, attributes)
        for node in nodes.values():
            self.acyclic(assistant, node, where, f"{path}.nodes.{node.id}")
        return assistant

    def node(self, node_id: str, data: object, where: str, path: str) -> Node:
        where = f"{where}, node {node_id!r}"
        if not isinstance(data, dict):
            raise self.fail(where, "expected a mapping", path)
        unknown = sorted(set(data) - _NODE_KEYS, key=str)
        if unknown:
            keys = ", ".join(sorted(_NODE_KEYS))
            raise self.fail(
                where, f"unknown key `{unknown[0]}`; use {keys}", f"{path}.{unknown[0]}"
            )
        template, articles = self.template(data, where, path)
        next_, default, then, end = self.moves(data, where, path)
        node = Node(node_id, template, articles, next_, default, then, end)
        stray = sorted(set(next_) - node.offered)
        if stray:
            offered = ", ".join(sorted(node.offered)) or "nothing"
            raise self.fail(
                where,
                f"`next` has {stray[0]!r}, which the node does not offer (it offers: {offered})",
                f"{path}.next.{stray[0]}",
            )
        return node

    def template(
        self, data: dict[str, Any], where: str, path: str
    ) -> tuple[dict[str, Any], tuple[dict[str, str], ...]]:
        """The node's Kustomer template and, for a deflection, its articles."""
        kind = data.get("template", "text")
        if kind not in _TEMPLATES:
            raise self.fail(
                where, f"`template` must be one of {', '.join(_TEMPLATES)}", f"{path}.template"
            )
        body = self.text(data.get("body"), where, "body", path)
        template: dict[str, Any] = {"templateType": kind, "body": body}
        owners = {"quick_replies": "quick_replies", "mll": "mll", "articles": "deflection"}
        for key, owner in owners.items():
            if key in data and kind != owner:
                raise self.fail(
                    where, f"`{key}` belongs to `template: {owner}` nodes", f"{path}.{key}"
                )
        if kind == "quick_replies":
            template["actions"] = self.quick_replies(data.get("quick_replies"), where, path)
        elif kind == "mll":
            children = self.tree(data.get("mll"), where, f"{path}.mll")
            template["actions"] = {"tree": {"children": children}}
        elif kind == "deflection":
            return template, self.articles(data.get("articles"), where, path)
        return template, ()

    def moves(
        self, data: dict[str, Any], where: str, path: str
    ) -> tuple[dict[str, str], str | None, str | None, Literal["handoff", "conversation"] | None]:
        """Where the node leads: ``next``, ``default``, ``then`` and ``end``, consistent."""
        next_ = data.get("next", {})
        if not isinstance(next_, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in next_.items()
        ):
            raise self.fail(where, "`next` must map payload strings to node ids", f"{path}.next")
        default = data.get("default")
        then = data.get("then")
        for key, value in (("default", default), ("then", then)):
            if value is not None:
                self.text(value, where, key, path)
        end = data.get("end")
        if end is not None and end not in _ENDS:
            raise self.fail(where, f"`end` must be one of {', '.join(_ENDS)}", f"{path}.end")
        if end is not None and (next_ or default or then):
            raise self.fail(
                where, "an `end` node finishes the assistant: drop next, default and then", path
            )
        if then is not None and (next_ or default):
            raise self.fail(where, "a `then` node does not wait: drop next and default", path)
        if end is None and then is None and not next_ and default is None:
            raise self.fail(where, "no way on: give it `next`, `default`, `then` or `end`", path)
        return next_, default, then, end

    def quick_replies(self, data: object, where: str, path: str) -> list[dict[str, str]]:
        path = f"{path}.quick_replies"
        if not isinstance(data, list) or not data:
            raise self.fail(where, "`quick_replies` must be a non-empty list", path)
        actions = []
        for index, item in enumerate(data):
            if not isinstance(item, dict):
                raise self.fail(where, "each quick reply is a mapping", f"{path}.{index}")
            actions.append(
                {
                    "displayText": self.text(
                        item.get("displayText"), where, "displayText", f"{path}.{index}"
                    ),
                    "value": self.text(item.get("value"), where, "value", f"{path}.{index}"),
                    "valueType": "text",
                }
            )
        return actions

    def tree(self, data: object, where: str, path: str) -> list[dict[str, Any]]:
        if not isinstance(data, list) or not data:
            raise self.fail(where, "`mll` must be a non-empty list of {id, displayName}", path)
        children = []
        for index, item in enumerate(data):
            here = f"{path}.{index}"
            if not isinstance(item, dict):
                raise self.fail(where, "each mll entry is a mapping", here)
            child: dict[str, Any] = {
                "id": self.text(item.get("id"), where, "id", here),
                "displayName": self.text(item.get("displayName"), where, "displayName", here),
            }
            if "children" in item:
                child["children"] = self.tree(item["children"], where, f"{here}.children")
            children.append(child)
        return children

    def articles(self, data: object, where: str, path: str) -> tuple[dict[str, str], ...]:
        path = f"{path}.articles"
        if not isinstance(data, list) or not data:
            raise self.fail(where, "`articles` must be a non-empty list", path)
        articles = []
        for index, item in enumerate(data):
            if not isinstance(item, dict):
                raise self.fail(where, "each article is a mapping", f"{path}.{index}")
            articles.append(
                {
                    key: self.text(item.get(key), where, key, f"{path}.{index}")
                    for key in _ARTICLE_KEYS
                }
            )
        return tuple(articles)

    def links(self, node: Node, nodes: Mapping[str, Node], where: str, path: str) -> None:
        where = f"{where}, node {node.id!r}"
        targets: list[tuple[str, str | None]] = [
            (f"next.{key}", value) for key, value in node.next.items()
        ]
        targets += [("default", node.default), ("then", node.then)]
        for key, target in targets:
            if target is not None and target not in nodes:
                raise self.fail(where, f"`{key}` names no node: {target!r}", f"{path}.{key}")

    def acyclic(self, assistant: Assistant, node: Node, where: str, path: str) -> None:
        seen = {node.id}
        current = node
        while current.then is not None:
            if current.then in seen:
                raise self.fail(
                    f"{where}, node {node.id!r}",
                    "`then` leads back to itself; one of the nodes must wait for the customer",
                    f"{path}.then",
                )
            seen.add(current.then)
            current = assistant.nodes[current.then]


def load_assistants(source: str | Path | None = None) -> dict[str, Assistant]:
    """Read and check an assistant file; ``None`` loads the shipped ``support.yaml``.

    Raises :class:`InvalidInputError` naming the file, the assistant, the node and the key;
    also for a file that is not UTF-8, nests deeper than ``MAX_YAML_DEPTH`` (64) levels, holds
    more than ``MAX_YAML_NODES`` (100,000) values or a key that is not text (see
    :mod:`assistant_flow._yaml`).
    """
    if source is None:
        shipped = resources.files(__package__).joinpath("assistants", DEFAULT_ASSISTANTS)
        raw = shipped.read_bytes()
        name = DEFAULT_ASSISTANTS
    else:
        path = Path(source)
        name = str(path)
        try:
            raw = path.read_bytes()
        except (OSError, ValueError) as error:  # ValueError: a NUL in the name
            raise InvalidInputError(
                f"{name}: cannot read the assistant file ({type(error).__name__})",
                field="assistants",
            ) from error
    try:
        text = _yaml.decode(raw)
    except _yaml.YAMLProblem as error:
        raise InvalidInputError(
            f"{name}: cannot read the assistant file: line {error.line}: {error.reason}",
            field="assistants",
        ) from error
    try:
        loaded = _yaml.load(text)
    except _yaml.YAMLProblem as error:
        line = f" at line {error.line}" if error.line is not None else ""
        raise InvalidInputError(
            f"{name}: not valid YAML{line}: {error.reason}", field="assistants"
        ) from error
    return _Reader(name).assistants(loaded)
