"""HTTP/2 flow-control stress, differential between codecs (issue #24 part 3 item 3).

    python bench/h2_stall.py ember 3        # our codec, 3 rounds
    python bench/h2_stall.py h2 1           # EMBER_HTTP2_CODEC=h2
    WINDOWS=1000,65535 FLIP=1 python bench/h2_stall.py ember 3

An Ember server (``/echo`` returns the whole body, ``/stream`` streams it back as read)
and 3 raw ``h2`` client connections × 40 streams each uploading 0 B-1 MB and reading
it back; the client's receive window (``WINDOWS``) is small, it reads slowly now and
then, and with ``FLIP=1`` it shrinks its INITIAL_WINDOW_SIZE to 0 and back five times
mid-transfer.  Every byte must come back; a round that does not finish in 120 s is a
stall.  Server stderr: /tmp/h2fast/server_<codec>.log.
"""
import asyncio
import os
import random
import socket
import subprocess
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

APP = r'''
import sys
from ember import Ember, Request, StreamingResponse, ServerLimits
app = Ember()

@app.post("/echo")
async def echo(request: Request):
    return await request.body()

@app.post("/stream")
async def stream(request: Request):
    async def gen():
        async for chunk in request.stream():
            yield chunk
    return StreamingResponse(gen())

app.run(host="127.0.0.1", port=int(sys.argv[1]), workers=1, http2=True, access_log=False,
        max_body_size=64 * 1024 * 1024)
'''

async def one_conn(port, streams, window, seed, results):
    rnd = random.Random(seed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.local_settings = h2.settings.Settings(client=True, initial_values={
        h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window,
        h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1000})
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    pending = {}  # sid -> [body, sent, received bytearray, done]
    window_open = asyncio.Event()
    for _ in range(streams):
        sid = conn.get_next_available_stream_id()
        size = rnd.choice([0, 1, 100, 16384, 70000, 300000, 1000000])
        body = os.urandom(16) * (size // 16) + b"x" * (size % 16)
        path = rnd.choice([b"/echo", b"/stream"])
        conn.send_headers(sid, [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"x"),
                                (b":path", path), (b"content-length", str(len(body)).encode())],
                          end_stream=not body)
        pending[sid] = [body, 0, bytearray(), False, path]
    writer.write(conn.data_to_send())

    async def pump():
        while any(p[1] < len(p[0]) for p in pending.values()):
            progressed = False
            for sid, p in pending.items():
                body, sent = p[0], p[1]
                if sent >= len(body) or sid not in conn.streams:
                    continue
                w = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size, len(body) - sent)
                if w > 0:
                    end = sent + w == len(body)
                    conn.send_data(sid, body[sent:sent + w], end_stream=end)
                    p[1] = sent + w
                    progressed = True
            writer.write(conn.data_to_send())
            await writer.drain()
            if not progressed:
                window_open.clear()
                await window_open.wait()

    async def flip():
        # the client's windows shrink to nothing and open again, mid-transfer
        if os.environ.get("FLIP"):
            for _ in range(5):
                await asyncio.sleep(0.05)
                conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
                writer.write(conn.data_to_send())
                await asyncio.sleep(0.05)
                conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
                writer.write(conn.data_to_send())

    async def read():
        while not all(p[3] for p in pending.values()):
            data = await reader.read(65536)
            if not data:
                raise RuntimeError("server closed")
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.DataReceived):
                    pending[ev.stream_id][2] += ev.data
                    if rnd.random() < 0.3:
                        await asyncio.sleep(0.001)  # a slow reader now and then
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.ResponseReceived):
                    pending[ev.stream_id].append(dict(ev.headers).get(b":status"))
                elif isinstance(ev, h2.events.StreamEnded):
                    pending[ev.stream_id][3] = True
                elif isinstance(ev, h2.events.StreamReset):
                    raise RuntimeError(f"stream {ev.stream_id} reset {ev.error_code} status {pending[ev.stream_id][5:]} path {pending[ev.stream_id][4]} size {len(pending[ev.stream_id][0])} sent {pending[ev.stream_id][1]} got {len(pending[ev.stream_id][2])}")
                elif isinstance(ev, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
                    window_open.set()
            out = conn.data_to_send()
            if out:
                writer.write(out)
    await asyncio.gather(pump(), read(), flip())
    for sid, p in pending.items():
        assert bytes(p[2]) == p[0], (sid, len(p[2]), len(p[0]), p[4])
    results.append(streams)
    writer.close()


async def load(port, conns, streams, window, seed):
    results = []
    await asyncio.wait_for(asyncio.gather(*(one_conn(port, streams, window, seed * 100 + i, results)
                                            for i in range(conns))), 120)
    return sum(results)


def main():
    codec = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.makedirs("/tmp/h2fast", exist_ok=True)
    with open("/tmp/h2fast/stall_app.py", "w") as f:
        f.write(APP)
    log = open(f"/tmp/h2fast/server_{codec}.log", "w")  # noqa: SIM115 - the server's life
    env = dict(os.environ, EMBER_HTTP2_CODEC=codec)
    proc = subprocess.Popen([sys.executable, "/tmp/h2fast/stall_app.py", str(port)], env=env,
                            stderr=log)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        for r in range(rounds):
            for window in [int(w) for w in os.environ.get('WINDOWS', '1,1000,16384,65535').split(',')]:
                t = time.monotonic()
                try:
                    n = asyncio.run(load(port, 3, 40, window, r * 10 + window))
                    print(codec, "round", r, "window", window, "ok", n, f"{time.monotonic()-t:.1f}s", flush=True)
                except Exception as exc:
                    print(codec, "round", r, "window", window, "FAIL", type(exc).__name__, exc, flush=True)
    finally:
        proc.terminate()
        proc.wait()
        log.close()

if __name__ == "__main__":
    main()
