import os
import subprocess
import sys

from gateway import serve_env


def test_apply_sets_defaults_and_keeps_what_the_user_set(monkeypatch):
    for key in serve_env.DATA_PLANE:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP", "1")
    serve_env.apply()
    assert os.environ["RAY_SERVE_USE_GRPC_BY_DEFAULT"] == "1"
    assert os.environ["RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD"] == "0"
    assert os.environ["RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP"] == "1"


def test_the_launcher_makes_handles_that_use_grpc():
    """`python -m gateway` applies the settings before Serve reads them; handles made in the launcher (the
    gateway's engine handle among them) then default to gRPC rather than Ray object references."""
    env = {key: value for key, value in os.environ.items() if key not in serve_env.DATA_PLANE}
    code = (
        "import runpy, sys; sys.argv = ['gateway']; "
        "runpy.run_module('gateway.__main__', run_name='not_main'); "
        "from ray.serve._private.handle_options import DynamicHandleOptions; "
        "print(DynamicHandleOptions()._by_reference)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
