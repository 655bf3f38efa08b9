"""Open Inference Protocol (KServe v2 REST) conformance of a running scorer.

Drives the server with the reference client (tritonclient[http]) and with
raw requests shaped as the protocol's JSON examples, and checks every
answer. Run by scorer/e2e TestOpenInferenceProtocolConformance with a case
file: the server's address, the model, a window of readings and the scores
the library computes for it. Prints "ok <check>" per check; exits 1 at the
first failure.
"""

import json
import sys
import urllib.error
import urllib.request

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

case = json.load(open(sys.argv[1]))
url, model = case["url"], case["model"]
sensors = case["features"]
n = len(case["timestamps"])
checks = 0


def ok(name):
    global checks
    checks += 1
    print("ok", name, flush=True)


def fail(msg):
    print("FAIL", msg, flush=True)
    sys.exit(1)


def expect(cond, name, detail=""):
    if not cond:
        fail(f"{name}: {detail}")
    ok(name)


def raw(method, path, body=None, headers=None):
    """One plain HTTP request; returns status, headers and the body."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request("http://" + url + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def is_error_json(status, headers, body, code):
    if status != code or headers.get("Content-Type") != "application/json":
        return False
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return isinstance(doc, dict) and list(doc) == ["error"] and isinstance(doc["error"], str) and doc["error"] != ""


client = httpclient.InferenceServerClient(url=url)

# Health and metadata, through the client and as the spec's JSON objects.
expect(client.is_server_live(), "server live")
expect(client.is_server_ready(), "server ready")
meta = client.get_server_metadata()
expect(isinstance(meta.get("name"), str) and isinstance(meta.get("version"), str) and isinstance(meta.get("extensions"), list),
       "server metadata object", meta)
expect({"binary_tensor_data", "model_repository", "model_configuration"} <= set(meta["extensions"]), "extensions advertised", meta)
for path, key in [("/v2/health/live", "live"), ("/v2/health/ready", "ready")]:
    status, _, body = raw("GET", path)
    expect(status == 200 and json.loads(body) == {key: True}, "health " + path, body)
expect(client.is_model_ready(model), "model ready")
expect(client.is_model_ready(model, case["version"]), "model version ready")
expect(not client.is_model_ready("no-such-model"), "unknown model not ready")
mm = client.get_model_metadata(model)
expect(mm["name"] == model and case["version"] in mm["versions"] and isinstance(mm["platform"], str), "model metadata object", mm)
names = [i["name"] for i in mm["inputs"]]
expect(all(s in names for s in sensors) and all({"name", "datatype", "shape"} <= set(i) for i in mm["inputs"] + mm["outputs"]),
       "model metadata tensors", mm)
cfg = client.get_model_config(model)
expect(cfg["name"] == model and [i["name"] for i in cfg["input"]][: len(sensors)] == sensors, "model config", cfg)
index = client.get_model_repository_index()
expect({"name": model, "version": case["version"], "state": "READY"} in index, "repository index", index)
write = {"Authorization": "Bearer " + case["token"]}
client.load_model(model, headers=write)
ok("repository load")
try:
    client.unload_model(model, headers=write)
    expect(False, "unload of a model in service refused", "unloaded")
except InferenceServerException as e:
    expect("pin of pump-1" in str(e), "unload of a model in service refused", str(e))

# Inference: every combination of binary or JSON input, FP64 or FP32, [n]
# or [1, n], binary or JSON output.
window = {s: np.array(case["window"][s], dtype=np.float64) for s in sensors}
ts = np.array(case["timestamps"], dtype=np.int64)


def infer(dtype, batched, binary_in, binary_out, outputs=None):
    inputs = []
    for s in sensors + ["timestamp"]:
        arr = ts if s == "timestamp" else window[s].astype(dtype)
        if batched:
            arr = arr.reshape(1, n)
        dt = "INT64" if s == "timestamp" else ("FP64" if dtype == np.float64 else "FP32")
        inp = httpclient.InferInput(s, list(arr.shape), dt)
        inp.set_data_from_numpy(arr, binary_data=binary_in)
        inputs.append(inp)
    req_outputs = None
    if outputs is not None or not binary_out:
        req_outputs = [httpclient.InferRequestedOutput(o, binary_data=binary_out) for o in (outputs or ["score", "alert", "contributions"])]
    return client.infer(model, inputs, outputs=req_outputs, request_id="conf-1")


for dtype, want_key in [(np.float64, "scores_fp64"), (np.float32, "scores_fp32")]:
    want = np.array(case[want_key])
    for batched in (False, True):
        for binary_in in (True, False):
            for binary_out in (True, False):
                name = f"infer {np.dtype(dtype).name} {'[1, n]' if batched else '[n]'} {'binary' if binary_in else 'JSON'} in, {'binary' if binary_out else 'JSON'} out"
                res = infer(dtype, batched, binary_in, binary_out)
                score = res.as_numpy("score")
                shape = (1, n) if batched else (n,)
                expect(score is not None and score.shape == shape, name + ": shape", None if score is None else score.shape)
                expect(np.allclose(score.reshape(n), want, rtol=0, atol=1e-9), name + ": scores", np.max(np.abs(score.reshape(n) - want)))
                alert = res.as_numpy("alert")
                expect(alert.dtype == np.bool_ and alert.shape == shape, name + ": alert BOOL", alert.dtype)
                contrib = res.as_numpy("contributions")
                expect(contrib.shape == shape + (len(sensors),), name + ": contributions", contrib.shape)
                r = res.get_response()
                expect(r["model_name"] == model and r["model_version"] == case["version"] and r["id"] == "conf-1", name + ": response object", r)

# The client's default call: every input binary, every output binary.
res = infer(np.float64, False, True, True, outputs=None)
expect(len(res.get_response()["outputs"]) == 7 and all("binary_data_size" in o["parameters"] for o in res.get_response()["outputs"]),
       "default call returns every output as binary", res.get_response())

# The spec's JSON example of an inference request, with this model's inputs.
body = {"id": "42", "inputs": [{"name": s, "shape": [n], "datatype": "FP64", "data": case["window"][s]} for s in sensors],
        "outputs": [{"name": "score"}]}
status, headers, b = raw("POST", f"/v2/models/{model}/infer", body, {"Content-Type": "application/json"})
doc = json.loads(b)
expect(status == 200 and headers.get("Content-Type") == "application/json" and doc["id"] == "42" and [o["name"] for o in doc["outputs"]] == ["score"],
       "spec JSON inference request", doc)
out = doc["outputs"][0]
expect(out["datatype"] == "FP64" and out["shape"] == [n] and np.allclose(out["data"], case["scores_fp64"], rtol=0, atol=1e-9), "spec JSON inference response tensor", out)

# Errors: the client raises with the server's message, and every error
# answer is the spec's JSON error object.
try:
    inp = httpclient.InferInput(sensors[0], [n], "FP64")
    inp.set_data_from_numpy(window[sensors[0]])
    client.infer("no-such-model", [inp])
    fail("infer of an unknown model succeeded")
except InferenceServerException as e:
    expect("no-such-model" in str(e) and "not found" in str(e), "client error on unknown model", str(e))
try:
    inp = httpclient.InferInput(sensors[0], [n], "FP64")
    inp.set_data_from_numpy(window[sensors[0]])
    client.infer(model, [inp])
    fail("infer without every feature succeeded")
except InferenceServerException as e:
    expect("inputs lack" in str(e) and sensors[1] in str(e), "client error on a missing input", str(e))
for method, path, body, code in [
    ("POST", f"/v2/models/{model}/infer", b"", 400),
    ("POST", f"/v2/models/{model}/infer", b'{"inputs": [', 400),
    ("POST", f"/v2/models/{model}/infer", {"inputs": [{"name": sensors[0], "shape": [2, 2], "datatype": "FP64", "data": [1, 2, 3, 4]}]}, 400),
    ("POST", f"/v2/models/{model}/infer", {"inputs": [{"name": sensors[0], "shape": [1], "datatype": "BYTES", "data": ["a"]}]}, 400),
    ("POST", "/v2/models/no-such-model/infer", {"inputs": []}, 404),
    ("GET", "/v2/models/no-such-model", None, 404),
    ("GET", "/v2/no/such/route", None, 404),
    ("GET", f"/v2/models/{model}/infer", None, 405),
    ("DELETE", "/v2/repository/index", None, 405),
]:
    status, headers, b = raw(method, path, body)
    expect(is_error_json(status, headers, b, code), f"error JSON {method} {path} {code}", (status, headers.get("Content-Type"), b[:200]))

print(f"{checks} checks passed", flush=True)
