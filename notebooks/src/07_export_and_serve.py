"""exports the generator (.keras, SavedModel, LiteRT), checks each against the original, calls the
Lambda handler and a local gallery server"""

# Source of notebooks/07_export_and_serve.ipynb; build_notebooks.py adds the shared cells (_shared.py).
from cargan_tf import notebook as nb  # imported by the shared setup cell

# %% [markdown]
# # 07 · Export the generator and serve it
#
# A trained generator becomes a small serving model (latents in, uint8 images out) in three
# formats: `.keras`, a TensorFlow SavedModel and LiteRT (`.tflite`, float16 and dynamic-range).
# Every export is checked against the original generator. Then the same API the AWS Lambda handler
# answers is called directly, and a local gallery server is started and queried. A seed names the
# same car in every path. With no `run_dir` and `smoke = True`, it trains a tiny run first.

# %% tags=["parameters"]
run_dir = ""  # a run folder, relative: under home ("": home/runs/<run_name>, or a tiny smoke run)
run_name = ""  # used when run_dir is empty, e.g. the run_name of notebook 02
formats = "keras, savedmodel, litert"  # which exports to write (tflite = litert)
seed = 7  # the seed whose car every path must agree on
home = None  # home folder (None: MyDrive/cargan in Colab, ~/cargan elsewhere)
smoke = False  # build a tiny run when no run folder is given

# %% [markdown]
# ## 3. The run folder

# %%
from cargan_tf import export, generate, serve

run = nb.find_run(run_dir, run_name, home, smoke)  # run_dir relative: under home
out_dir = home / "exports" / run.name
print("run folder:", run, "-> exports in", out_dir)

# %% [markdown]
# ## 4. Export and check
#
# Each format is reloaded and its images compared with the original generator's; the sizes and
# the differences (in uint8 levels) go to `export_report.json`.

# %%
report = export.export(run, out_dir, tuple(formats.split(",")))
report_json = out_dir / "export_report.json"

# %% [markdown]
# ## 5. One seed, every path
#
# The original generator, each export and the Lambda handler must draw the same car for a seed.

# %%
import base64
import json
import os

reference = generate.images_for_seed(generate.load_generator(run), seed, 1)[0]
models = [p for p in out_dir.iterdir() if p.name.startswith("serving") and p.suffix != ".json"]
for model_path in sorted(models):  # each format (serving_controls.json describes them)
    image = export.load_serving_model(model_path).images_for_seed(seed, 1)[0]
    diff = int(abs(image.astype(int) - reference.astype(int)).max())
    print(f"{model_path.name:32s} max difference {diff} levels")

os.environ["CARGAN_MODEL"] = str(out_dir / "serving.keras")
event = {"httpMethod": "GET", "queryStringParameters": {"n": "4", "seed": str(seed),
                                                         "format": "grid"}}
response = serve.lambda_handler(event, None)
print(response["statusCode"], response["headers"]["Content-Type"])
grid_png = out_dir / f"lambda_grid_seed{seed}.png"
grid_png.write_bytes(base64.b64decode(response["body"]))
nb.show_image(grid_png, width=320)

# %% [markdown]
# ## 6. A local gallery server
#
# `python -m cargan_tf serve RUN --port 8000` runs the same API plus a gallery page (a grid of new
# cars, a new-seed button, a slider between two seeds) on 127.0.0.1. Here it runs in a thread for
# one request; in Colab, use the CLI from a terminal or `google.colab.output.serve_kernel_port_as_window`.

# %%
import threading
import urllib.request

server = serve.make_server(export.load_serving_model(run), port=0)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}/api/generate?n=1&seed={seed}"
with urllib.request.urlopen(url, timeout=60) as reply:
    served_png = out_dir / f"served_seed{seed}.png"
    served_png.write_bytes(reply.read())
server.shutdown()
print("served", served_png, json.dumps(report.get("ok")))

# %% include="outputs"

# %%
listing = nb.record_outputs(home, "07_export_and_serve", [report_json, grid_png, served_png])
