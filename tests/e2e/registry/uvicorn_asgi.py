"""An ASGI application served by uvicorn from the package registry
(uvicorn_requirements.txt), on asyncio with the pure-Python h11 protocol:
python uvicorn_asgi.py HOST PORT. GET answers JSON naming the path; POST
echoes its body."""
import json
import sys

import uvicorn


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["method"] == "POST":
        payload = body
    else:
        payload = json.dumps({"path": scope["path"], "server": "uvicorn"}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    print("starting uvicorn", flush=True)
    uvicorn.run(app, host=host, port=port, loop="asyncio", http="h11", ws="none",
                lifespan="off", log_level="warning", access_log=False)
