from gateway import serve_env

serve_env.apply()  # before anything imports ray.serve

from gateway.launcher import serve_forever  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(serve_forever())
