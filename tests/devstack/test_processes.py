"""Starting a service process on a port another process already serves."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from koalr_devstack.processes import ProcessFailedError, ServiceProcess


def test_a_port_already_served_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        process = ServiceProcess(
            name="connector",
            module="koalr_connector",
            args=["serve"],
            env={},
            port=port,
            log_dir=tmp_path,
        )
        with pytest.raises(ProcessFailedError) as refused:
            process.start()
    assert f"port {port} for connector is already in use" in str(refused.value)
    assert "make down" in str(refused.value)
    assert not process.running
