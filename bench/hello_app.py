"""The baseline for bench/api_bench.py: a bare FastAPI hello-world on the same server settings."""

from fastapi import FastAPI

app = FastAPI()


@app.post("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}
