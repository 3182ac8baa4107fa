"""The embedded broker writes each message whole before any consumer can list it."""

from __future__ import annotations

import json
import os

from kombu import Connection


def test_a_message_appears_whole_under_its_final_name_and_nothing_else_is_left(tmp_path):
    from riskapp.broker import Channel, filesystem_transport_install

    filesystem_transport_install()
    folder = tmp_path / "queue"
    folder.mkdir()
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "control_folder": str(tmp_path / "c")}
    with Connection("filesystem://", transport_options=options) as connection:
        channel = connection.channel()
        assert isinstance(channel, Channel)
        channel._put("score", {"body": "x" * 100_000})
        names = os.listdir(folder)
        assert len(names) == 1 and names[0].endswith(".score.msg"), names  # no partial file left behind
        assert json.loads((folder / names[0]).read_bytes())["body"] == "x" * 100_000
        assert channel._get("score")["body"] == "x" * 100_000
