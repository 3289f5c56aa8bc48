"""Slow bodies for noisy.sh: N connections of tenant B, each declaring a 100 kB body and
sending it one byte a second; a connection the server closes (408 once its body timeout is
reached) is opened again. Runs until killed. Usage: slow_bodies.py HOST PORT N"""
import asyncio, os, sys

HOST, PORT, N = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
HEAD = ("POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"X-Tenant-ID: {os.environ['B_TENANT']}\r\nX-User-ID: {os.environ['B_USER']}\r\n"
        f"X-API-Key: {os.environ['B_KEY']}\r\nContent-Length: 100000\r\n\r\n").encode()

async def one():
    while True:
        try:
            r, w = await asyncio.open_connection(HOST, PORT)
            w.write(HEAD)
            while True:
                w.write(b" ")
                await w.drain()
                await asyncio.sleep(1)
                if r.at_eof():
                    break
        except OSError:
            await asyncio.sleep(0.2)

async def main():
    await asyncio.gather(*(one() for _ in range(N)))

asyncio.run(main())
