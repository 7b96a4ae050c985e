"""deploy/lambda as real files: the Dockerfile copies enough for the LiteRT handler and nothing
that pulls TensorFlow, Keras or OpenCV; its requirements are pinned and agree with the
project's; .dockerignore lets through what the Dockerfile copies; the SAM template is what the
README and BENCHMARKS say. The clean-venv run of deploy/lambda/check_image.py and cfn-lint are CI
steps of their own (.ci/run); the last test here runs cfn-lint too where it is installed."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

DEPLOY = REPO / "deploy" / "lambda"
sys.path.insert(0, str(DEPLOY))
import check_image  # noqa: E402  (deploy/lambda/check_image.py)

FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture(scope="module")
def tiny_litert(tmp_path_factory) -> Path:
    """A float16 .tflite of an untrained tiny generator (what the image would ship, smaller)."""
    return check_image.make_model(tmp_path_factory.mktemp("lambda_model"), aim64=False)


def test_the_dockerfile_is_the_lambda_python_base_image_with_the_handler():
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM public\.ecr\.aws/lambda/python:3\.1[23]$", text, re.M)
    assert 'CMD ["cargan_tf.serve.lambda_handler"]' in text
    assert "ENV CARGAN_MODEL=" in text
    copies = check_image.dockerfile_copies()
    sources = [s for sources, _ in copies for s in sources]
    assert "deploy/lambda/requirements.txt" in sources
    package = [s for s in sources if s.startswith("cargan_tf/")]
    assert "cargan_tf/serve.py" in package and all(s.endswith(".py") for s in package)
    assert not {"cargan_tf/models.py", "cargan_tf/train.py", "cargan_tf/viz.py"} & set(package)


def test_dockerignore_lets_through_what_the_dockerfile_copies():
    rules = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]

    def sent(path: str) -> bool:  # Docker's rule: the last matching pattern wins
        keep = True
        for rule in rules:
            negate = rule.startswith("!")
            if fnmatch.fnmatch(path, rule.lstrip("!")):
                keep = negate
        return keep

    for sources, _ in check_image.dockerfile_copies():
        for source in sources:
            if "$" not in source:
                assert sent(source), source
    assert sent("export/serving_float16.tflite")  # the default MODEL build argument
    assert not sent(".venv/bin/python") and not sent("runs/x/generator.keras")


def test_the_image_ships_the_controls_beside_the_model():
    """serving_controls.json (classes, directions) goes to the model's folder, and Docker gets it."""
    text = (DEPLOY / "Dockerfile").read_text()
    assert "ARG CONTROLS=export/serving_controls.json" in text
    assert (["${CONTROLS}"], "/opt/model/serving_controls.json") in check_image.dockerfile_copies()
    assert re.search(r"ENV CARGAN_MODEL=/opt/model/", text)
    rules = (REPO / ".dockerignore").read_text().splitlines()
    assert "!export/serving_controls.json" in rules


def test_the_copied_files_alone_run_the_handler_without_tensorflow(tmp_path, tiny_litert):
    """The Dockerfile's COPY lines into a task folder, and the handler run from it alone: a
    module missing from the list (or one that imports TF at its top) fails here."""
    task = tmp_path / "task"
    copied = check_image.build_task_root(task)
    assert sorted(p.relative_to(task).as_posix() for p in task.rglob("*.py")) == sorted(copied)
    events = {name: json.loads((FIXTURES / f"{name}.json").read_text())
              for name in check_image.EVENTS}
    code = ("import json, sys; from cargan_tf.serve import lambda_handler; "
            "import cargan_tf; assert cargan_tf.__file__.startswith(sys.argv[2]), cargan_tf.__file__; "
            "codes = {k: lambda_handler(e, None)['statusCode'] for k, e in json.loads(sys.argv[1]).items()}; "
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'cv2'}); "
            "print(json.dumps([codes, heavy]))")
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(task), "CARGAN_MODEL": str(tiny_litert),
           "AWS_LAMBDA_FUNCTION_NAME": "test"}  # as in Lambda: the model loads at import
    out = subprocess.run([sys.executable, "-s", "-c", code, json.dumps(events), str(task)],
                         env=env, cwd=task, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    codes, heavy = json.loads(out.stdout.strip().splitlines()[-1])
    assert codes == {name: 200 for name in check_image.EVENTS} and heavy == []


def test_the_image_requirements_are_pinned_and_agree_with_the_project():
    def pins(path: Path) -> dict[str, str]:
        lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
        return dict(line.lower().split("==") for line in lines if line)

    image = pins(DEPLOY / "requirements.txt")
    assert all(version for version in image.values())  # every line name==version
    project = pins(REPO / "requirements.txt")
    for name in ("ai-edge-litert", "numpy"):
        assert image[name] == project[name], name
    assert not {"tensorflow", "tensorflow-cpu", "keras", "opencv-python-headless"} & set(image)
    assert pins(DEPLOY / "requirements-lint.txt")["cfn-lint"]


def _template() -> dict:
    yaml = pytest.importorskip("yaml")

    class Loader(yaml.SafeLoader):
        pass

    # CloudFormation's short forms (!Ref, !Sub, ...) as plain values
    Loader.add_multi_constructor("!", lambda loader, suffix, node: (
        loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode)
        else loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode)
        else loader.construct_mapping(node)))
    return yaml.load((DEPLOY / "template.yaml").read_text(), Loader=Loader)


def test_the_sam_template_builds_this_image_behind_an_http_api():
    template = _template()
    function = template["Resources"]["GenerateFunction"]
    props = function["Properties"]
    assert props["PackageType"] == "Image"
    meta = function["Metadata"]
    assert (DEPLOY / meta["DockerContext"] / meta["Dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    event = props["Events"]["Generate"]
    assert event["Type"] == "HttpApi" and event["Properties"]["Path"] == "/api/generate"
    # the memory and timeout the measurement chose, cited in BENCHMARKS.md
    memory = template["Parameters"]["MemorySize"]["Default"]
    benchmarks = (REPO / "BENCHMARKS.md").read_text()
    assert "Lambda image: cold start and warm latency" in benchmarks
    assert f"MemorySize {memory}" in benchmarks and f"Timeout {props['Timeout']}" in benchmarks


def test_the_sam_template_passes_cfn_lint():
    cfn_lint = os.environ.get("CFN_LINT") or shutil.which("cfn-lint")
    works = cfn_lint and subprocess.run([cfn_lint, "--version"], capture_output=True,
                                        timeout=120).returncode == 0
    if not works:
        pytest.skip("cfn-lint is not installed here (.ci/run installs it in a venv of its own)")
    out = subprocess.run([cfn_lint, str(DEPLOY / "template.yaml")], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_the_handler_runs_in_a_clean_venv_of_the_image_requirements(tmp_path):
    """The whole check (a venv with only requirements.txt: needs the package index)."""
    out = subprocess.run([sys.executable, str(DEPLOY / "check_image.py"), "--venv",
                          str(tmp_path / "venv")], capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["imported_heavy"] == [] and len(result["checks"]) == 6
