from gateway.launcher import serve_forever

if __name__ == "__main__":
    raise SystemExit(serve_forever())
