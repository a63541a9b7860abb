"""The pytest plugin, as a user's project sees it (through pytester)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DIALOGS = Path(__file__).parent / "dialogs"


@pytest.fixture(autouse=True)
def quiet_ini(pytester: pytest.Pytester) -> None:
    # The project a user has: pytest-asyncio configured, warnings as errors.
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\nfilterwarnings = error\n"
    )


def test_the_plugin_is_registered_by_the_entry_point(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_plugin(pytestconfig):
            assert pytestconfig.pluginmanager.has_plugin("assistant_flow")
        """
    )
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_dialog_scripts_are_collected_and_run(pytester: pytest.Pytester) -> None:
    for name in ("support_login.dialog.yaml", "fed_deflection.dialog.yaml"):
        pytester.path.joinpath(name).write_text((DIALOGS / name).read_text())
    pytester.path.joinpath("notes.yaml").write_text("steps: nonsense\n")  # not a dialog script
    result = pytester.runpytest_inprocess("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*fed_deflection.dialog.yaml::fed_deflection PASSED*",
            "*support_login.dialog.yaml::a customer who cannot log in reaches a person PASSED*",
        ]
    )
    memory = pytester.runpytest_inprocess("--dialog-target", "memory", "-p", "no:cacheprovider")
    memory.assert_outcomes(passed=1, failed=1)
    memory.stdout.fnmatch_lines(["*runs on the stub target only*"])


def test_a_failing_dialog_reads_as_the_step_line_and_difference(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("wrong.dialog.yaml").write_text(
        "init: {assistant: a, dialog: d, node: n}\n"
        "steps:\n"
        "  - say: Hi\n"
        "    expect: {isInAssistantMode: false, initAssistantPayload.node: m}\n"
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*dialog 'wrong' failed on memory:",
            "*wrong.dialog.yaml:3: step 1 (say: 'Hi')",
            "payload differs in 2 fields:",
            "  different   isInAssistantMode: expected false, got true",
            '  different   initAssistantPayload.node: expected "m", got "n"',
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert "_runner.py" not in result.stdout.str()


def test_a_script_mistake_is_reported_with_file_and_line(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("typo.dialog.yaml").write_text(
        "steps:\n  - say: Hi\n    expect:\n      isInAsistantMode: true\n"
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["dialog script error: *typo.dialog.yaml:4: `isInAsistantMode` is not a field*"]
    )


def test_flow_fixtures_and_the_assert_helpers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from assistant_flow import AsyncFlow, Flow
        from assistant_flow.dialogs import ABSENT, assert_payload

        def test_sync(memory_flow):
            assert isinstance(memory_flow, Flow)
            conv = memory_flow.conversation("c1")
            conv.start_assistant({"assistant": "a", "dialog": "d", "node": "n"})
            conv.send_message("Hi")
            assert_payload(memory_flow.transport.sent[0],
                           {"isInAssistantMode": True, "lastDeflection": ABSENT})

        async def test_async(async_memory_flow):
            assert isinstance(async_memory_flow, AsyncFlow)
            conv = async_memory_flow.conversation("c1")
            await conv.send_message("Hi")
            assert_payload(async_memory_flow.transport.sent[0], {"body": "Bye"})
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-o", "asyncio_mode=auto")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*PayloadMismatchError: payload differs in 1 field:",
            '*different   body: expected "Bye", got "Hi"',
        ]
    )


def test_the_stub_fixture_plays_the_marked_assistant(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("shop.yaml").write_text(
        textwrap.dedent(
            """
            assistants:
              asst_shop:
                dialog: dlg_shop
                start: hello
                nodes:
                  hello: {body: Hello from the shop, default: bye}
                  bye: {body: Bye, end: handoff}
            """
        )
    )
    pytester.makepyfile(
        """
        import pytest
        from assistant_flow.testing import StubClient

        @pytest.mark.kustomer_assistants("shop.yaml")
        def test_marked(kustomer_stub):
            with StubClient(kustomer_stub.url, kustomer_stub.api_key) as core:
                assert core.init_assistant("asst_shop")["dialog"] == "dlg_shop"

        def test_default(kustomer_stub, kustomer_stub_server):
            assert kustomer_stub is kustomer_stub_server
            with StubClient(kustomer_stub.url, kustomer_stub.api_key) as core:
                assert core.init_assistant("asst_support")["dialog"] == "dlg_welcome"

        def test_factory(kustomer_stub_for, kustomer_stub):
            shop = kustomer_stub_for("shop.yaml")
            assert shop is not kustomer_stub
        """
    )
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=3)


def test_the_old_fixtures_module_still_works_beside_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["assistant_flow.testing.fixtures"]\n')
    # `pytest --fixtures` crashed when the module re-exported the plugin's fixtures.
    listing = pytester.runpytest_inprocess("--fixtures", "-p", "no:cacheprovider")
    assert listing.ret == 0, listing.stdout.str()
    assert listing.stdout.str().count("kustomer_stub_server [session scope]") == 1
    pytester.makepyfile(
        """
        def test_one(kustomer_stub, kustomer_stub_server):
            assert kustomer_stub is kustomer_stub_server
            kustomer_stub.fault("500", "messages")

        def test_two(kustomer_stub):
            assert kustomer_stub.faults == []   # reset between tests, as before
        """
    )
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_pytest_runs_without_the_stub_extra(tmp_path: Path) -> None:
    # uvicorn and PyYAML made unimportable: the plugin still loads, memory fixtures work, and
    # only the stub fixture says what is missing.
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\nfor name in ('uvicorn', 'yaml'):\n    sys.modules[name] = None\n"
    )
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            import sys

            def test_memory(memory_flow):
                memory_flow.conversation("c").send_message("Hi")
                assert "uvicorn" not in sys.modules or sys.modules["uvicorn"] is None

            def test_stub(kustomer_stub):
                pass
            """
        )
    )
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "1 passed, 1 error" in result.stdout, result.stdout + result.stderr
    assert "needs the `stub` extra: pip install 'assistant-flow[stub]'" in result.stdout


def test_yml_files_are_collected_and_a_bad_assistant_file_reads_plainly(
    pytester: pytest.Pytester,
) -> None:
    pytester.path.joinpath("short.dialog.yml").write_text("steps:\n  - say: Hi\n")
    pytester.path.joinpath("bot.yaml").write_text("assistants: {asst_x: {dialog: d}}\n")
    pytester.path.joinpath("bad_bot.dialog.yaml").write_text(
        "assistant: asst_x\nassistants: bot.yaml\nsteps:\n  - say: Hi\n"
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "dialog script error: *bad_bot.dialog.yaml:2: "
            "the assistant file cannot be played: *bot.yaml*"
        ]
    )


def test_a_crash_in_a_dialog_names_the_step(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from assistant_flow.dialogs import _runner

        real_act = _runner._act

        def act(step, session, script):
            raise RuntimeError("boom")

        def pytest_configure(config):
            _runner._act = act

        def pytest_unconfigure(config):
            _runner._act = real_act
        """
    )
    pytester.path.joinpath("crash.dialog.yaml").write_text(
        "init: {assistant: a, dialog: d, node: n}\nsteps:\n  - say: Hi\n"
    )
    # In a subprocess: the conftest patches the runner module, which this process shares.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "dialog 'crash' crashed: *crash.dialog.yaml:3: step 1 (say: 'Hi'): RuntimeError: boom",
            "Traceback (most recent call last):",
        ]
    )


def test_kustomer_stub_for_reads_a_file_next_to_the_test(pytester: pytest.Pytester) -> None:
    folder = pytester.mkdir("suite")
    folder.joinpath("shop.yaml").write_text(
        "assistants:\n  asst_shop:\n    dialog: dlg_shop\n    start: hello\n    nodes:\n"
        "      hello: {body: Hello, end: handoff}\n"
    )
    folder.joinpath("test_shop.py").write_text(
        textwrap.dedent(
            """
            from assistant_flow.testing import StubClient

            def test_shop(kustomer_stub_for):
                shop = kustomer_stub_for("shop.yaml")
                with StubClient(shop.url, shop.api_key) as core:
                    assert core.init_assistant("asst_shop")["dialog"] == "dlg_shop"
            """
        )
    )
    pytester.runpytest_inprocess("-p", "no:cacheprovider", "suite").assert_outcomes(passed=1)


def test_loading_the_plugin_leaves_the_runner_unimported() -> None:
    code = (
        "import sys, assistant_flow.dialogs.pytest_plugin\n"
        "heavy = [m for m in ('assistant_flow.dialogs._runner', 'assistant_flow.dialogs._script',"
        " 'assistant_flow.dialogs._compare', 'yaml', 'uvicorn') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
