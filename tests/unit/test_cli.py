"""The talker command's conventions: --version, defaults in help, JSON output, clean errors."""

from __future__ import annotations

import json

import pytest

from gateway import cli
from stack.process import free_port


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("talker ")


def test_every_option_shows_its_default(capsys):
    with pytest.raises(SystemExit):
        cli.main(["ask", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: out/reply.mp4)" in text and "(default: 180.0)" in text


def test_a_missing_file_is_a_message_not_a_traceback(capsys):
    assert cli.main(["ask", "--wav", "/nonexistent/question.wav"]) == 2
    err = capsys.readouterr().err
    assert "/nonexistent/question.wav: No such file or directory" in err and "Traceback" not in err


def test_status_of_a_gateway_nobody_listens_on(capsys):
    target = f"127.0.0.1:{free_port()}"
    assert cli.main(["status", "--target", target, "--json"]) == 1
    assert json.loads(capsys.readouterr().out) == [{"service": "gateway", "status": "DOWN", "target": target}]


def test_a_refused_connection_is_a_message(capsys):
    assert cli.main(["ask", "--target", f"127.0.0.1:{free_port()}", "--quiet", "--timeout", "5", "Hi"]) == 1
    assert "error: UNAVAILABLE" in capsys.readouterr().err


def test_ctrl_c_is_a_message(capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_down", interrupted)
    assert cli.main(["down"]) == 130 and "interrupted" in capsys.readouterr().err
