"""Reads an SSE stream with httpx-sse, a real third-party client.

usage: httpx_sse_client.py URL COUNT

Prints `ready` once the response head is in, then one JSON line per event
httpx-sse reports ({"event", "data", "id", "retry"}), and exits after COUNT
events. Every event httpx-sse yields is printed, including empty ones, so
the caller sees exactly what an application using httpx-sse would see.
"""

import json
import sys

import httpx
from httpx_sse import connect_sse


def main() -> None:
    url, count = sys.argv[1], int(sys.argv[2])
    with httpx.Client(timeout=httpx.Timeout(30.0)) as client:
        with connect_sse(client, "GET", url) as source:
            source.response.raise_for_status()
            print("ready", flush=True)
            for seen, sse in enumerate(source.iter_sse(), start=1):
                line = {"event": sse.event, "data": sse.data, "id": sse.id, "retry": sse.retry}
                print(json.dumps(line), flush=True)
                if seen == count:
                    return


if __name__ == "__main__":
    main()
