#!/usr/bin/python3
"""The soak's judgement of file descriptors and threads (tools/soak/soak.py), on sample patterns
seen in real runs. Run by ctest; no gateway needed."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import soak  # noqa: E402

PAHO = {"MQTTAsync_send": 1, "MQTTAsync_rcv": 1}


def sample(threads, fds, uplink=True, ingest=True, names=None):
    return {"threads": threads, "fds": fds, "uplink_connected": uplink, "ingest_ok": ingest,
            "thread_names": names if names is not None else (PAHO if uplink else {})}


class LinksComeAndGo(unittest.TestCase):
    def test_an_upstream_outage_in_the_first_third_is_not_growth(self):
        # CI's failure (stop 29): the first third held a sample taken while the upstream broker
        # was down (Paho's two threads and the socket gone), the last third none.
        first = [sample(20, 24, uplink=False), sample(22, 25)]
        last = [sample(22, 25), sample(22, 25)]
        self.assertEqual(soak.growth(first, last, "threads"), 0)
        self.assertEqual(soak.growth(first, last, "fds"), 0)

    def test_a_local_broker_restart_is_not_growth(self):
        first = [sample(22, 23, ingest=False), sample(22, 24)]
        last = [sample(22, 24), sample(22, 24)]
        self.assertEqual(soak.growth(first, last, "fds"), 0)

    def test_a_thread_leaked_while_the_links_are_up_is_growth_and_named(self):
        first = [sample(22, 24), sample(22, 24)]
        leaked = dict(PAHO, **{"hgj-http-sse": 1})
        last = [sample(23, 24, names=leaked), sample(23, 24, names=leaked)]
        self.assertEqual(soak.growth(first, last, "threads"), 1)
        self.assertEqual(soak.thread_names_grown(first, last), "hgj-http-sse +1")

    def test_a_socket_leaked_during_outages_still_counts(self):
        # With no sample of a third taken with the links up, all of its samples are judged.
        first = [sample(20, 20, uplink=False), sample(20, 20, uplink=False)]
        last = [sample(20, 23, uplink=False), sample(20, 23, uplink=False)]
        self.assertEqual(soak.growth(first, last, "fds"), 3)


if __name__ == "__main__":
    unittest.main()
