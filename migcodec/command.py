"""The ``migcodec`` command's entry point: the standard library only, so that what can go
wrong before the command runs (Ctrl-C while its modules load, a closed standard output)
still ends in one line and an exit status (:mod:`migcodec.cli`)."""

from __future__ import annotations

import signal
import sys

#: exit status after Ctrl-C (as :data:`migcodec.cli.args.EXIT_INTERRUPTED`): 128 + SIGINT
_EXIT_INTERRUPTED = 130
#: and after SIGTERM (as :data:`migcodec.cli.args.EXIT_TERMINATED`): 128 + SIGTERM
_EXIT_TERMINATED = 143


class _Terminated(KeyboardInterrupt):
    """SIGTERM while the command loads (the command's own handler takes over after)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated()


def _say(line: str) -> None:
    if sys.stderr is not None:  # closed too: nowhere to say it
        print(line, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    if sys.stdout is None:  # started with its descriptor closed (`migcodec codecs >&-`)
        _say(
            "migcodec: standard output is closed, so nothing could be reported; run it "
            "with standard output open (redirect it to /dev/null to discard it)"
        )
        return 1
    # SIGTERM in that second ended the process silently, with the default's status: it
    # says so in one line too (the handler is the caller's again on return; only the main
    # thread may set one)
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:
        previous = None
    try:
        # numpy and the codecs' libraries load here: a second or so in which Ctrl-C
        # reached the interpreter as a traceback
        from migcodec.cli import main as run

        return run(argv)
    except _Terminated:
        _say("migcodec: terminated")
        return _EXIT_TERMINATED
    except KeyboardInterrupt:  # before the command's own handling took over
        _say("migcodec: interrupted")
        return _EXIT_INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
