"""Helpers the test tools share (tools/soak/, tools/district/): free loopback ports, whether a
port answers, and a bounded wait. Loopback only: every target is 127.0.0.1."""
import socket
import time


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (all bound at once, so none is returned twice)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def free_port():
    return free_ports(1)[0]


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def wait_until(pred, timeout, step=0.05):
    """True as soon as pred() holds, checked every `step` s for at most `timeout` s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()
