"""RunConfig: JSON round-trips, presets, overrides, identity vs schedule keys. No TensorFlow."""

import os
import subprocess
import sys
from dataclasses import fields

import pytest

from cargan_tf import config
from cargan_tf.config import RunConfig
from cargan_tf.errors import ConfigError
from cargan_tf.runs import RunPaths


def test_json_round_trip_keeps_every_field_and_type():
    cfg = config.preset("fashion28", seed=7, real_label_range=(0.7, 0.9))
    back = RunConfig.from_json(cfg.to_json())
    assert back == cfg
    assert isinstance(back.real_label_range, tuple)


def test_identity_and_schedule_keys_partition_all_fields():
    names = {f.name for f in fields(RunConfig)}
    assert set(config.IDENTITY_KEYS) | set(config.SCHEDULE_KEYS) == names
    assert not set(config.IDENTITY_KEYS) & set(config.SCHEDULE_KEYS)
    assert {"epochs", "lr_d", "lr_g"} <= set(config.SCHEDULE_KEYS)
    assert {"image_size", "seed", "data", "l2_alpha"} <= set(config.IDENTITY_KEYS)


def test_unknown_key_is_refused_with_a_suggestion():
    with pytest.raises(ConfigError, match="did you mean 'lr_g'"):
        config.preset("aim64").replace(lr_gg=1e-3)


@pytest.mark.parametrize("key,value,message", [
    ("image_size", 48, "power of two"),
    ("channels", 2, "1 \\(grayscale\\) or 3"),
    ("frozen_d_batchnorm", "eval", "inference or batch"),
    ("grid_size", 10, "square number"),
])
def test_invalid_values_say_what_is_allowed(key, value, message):
    with pytest.raises(ConfigError, match=message):
        config.preset("aim64").replace(**{key: value})


def test_presets_hold_the_published_recipes():
    aim = config.preset("aim64")
    assert (aim.image_size, aim.kernel_size, aim.lr_d, aim.lr_g, aim.beta_1) == \
        (64, 5, 2e-4, 1.5e-4, 0.5)
    assert aim.g_noise_multiplier == 2 and aim.latent_dim == 100
    dc = config.preset("dcgan64")
    assert (dc.kernel_size, dc.use_bias, dc.batch_size, dc.lr_g) == (4, False, 128, 2e-4)
    with pytest.raises(ConfigError, match="unknown preset"):
        config.preset("stylegan9")


def test_a_step_budget_becomes_whole_epochs_of_the_loaded_set():
    cfg = config.preset("quick32", steps=100, epochs=3)
    assert config.epochs_for_steps(cfg, 6).epochs == 17      # ceil(100 / 6)
    assert config.epochs_for_steps(cfg, 128).epochs == 1     # never 0 epochs
    assert config.epochs_for_steps(cfg.replace(steps=0), 6).epochs == 3  # 0: epochs as set
    assert "steps" in config.SCHEDULE_KEYS  # a run may be trained for longer
    with pytest.raises(ConfigError, match="steps=-1 is not valid"):
        cfg.replace(steps=-1)


def test_photo64_is_quick32_at_64_with_flips_r1_and_every_photo():
    photo, quick = config.preset("photo64"), config.preset("quick32")
    photo.validate()  # R1 needs the logit loss and the fused engine: the preset has both
    assert (photo.image_size, photo.steps, photo.data_n, photo.flip) == (64, 7000, None, True)
    assert (photo.loss, photo.r1_gamma, photo.r1_every, photo.engine) == \
        ("nonsaturating", 0.05, 4, "fused")
    same = {k for k in config.IDENTITY_KEYS if getattr(photo, k) == getattr(quick, k)}
    assert set(config.IDENTITY_KEYS) - same == {"preset", "image_size", "data_n", "flip", "loss",
                                                "r1_gamma", "r1_every"}
    cfg = config.resolve("photo64", data="photos/", n_images=2500)   # 39 batches an epoch
    assert (cfg.steps, cfg.epochs) == (7000, 180)


def test_photo64cpu_is_photo64_at_batch_32_with_the_machines_precision_and_r1_02(monkeypatch):
    cpu, photo = config.preset("photo64cpu"), config.preset("photo64")
    cpu.validate()
    assert (cpu.batch_size, cpu.precision, cpu.steps) == (32, "auto", 14000)
    assert cpu.steps * cpu.batch_size == photo.steps * photo.batch_size   # the same images
    # four times photo64's R1 weight: it won the hour on both seeds (BENCHMARKS.md)
    assert (cpu.r1_gamma, cpu.r1_every) == (0.2, photo.r1_every) and photo.r1_gamma == 0.05
    same = {k for k in config.IDENTITY_KEYS if getattr(cpu, k) == getattr(photo, k)}
    assert set(config.IDENTITY_KEYS) - same == {"preset", "batch_size", "precision", "r1_gamma"}
    monkeypatch.setattr(config, "auto_precision", lambda: ("mixed_bfloat16", "test CPU"))
    cfg = config.resolve("photo64cpu", data="photos/", n_images=2500)  # 78 batches an epoch
    assert (cfg.precision, cfg.steps, cfg.epochs) == ("mixed_bfloat16", 14000, 180)


def test_photo64ada_is_photo64cpu_with_the_measured_adaptive_augmentation():
    ada, cpu = config.preset("photo64ada"), config.preset("photo64cpu")
    ada.validate()  # diffaugment needs the fused engine: the preset has it
    same = {k for k in config.IDENTITY_KEYS if getattr(ada, k) == getattr(cpu, k)}
    assert set(config.IDENTITY_KEYS) - same <= {"preset", "diffaugment", "ada_target", "r1_gamma"}
    # exactly the recipe BENCHMARKS measured: photo64cpu when its R1 weight was still 0.05,
    # --set diffaugment=... --set ada_target=... (ADA with 0.2 is not measured)
    assert ada.r1_gamma == 0.05 != cpu.r1_gamma
    measured = config.resolve("photo64cpu", settings={"diffaugment": "color,translation",
                                                      "ada_target": 0.6, "r1_gamma": 0.05},
                              n_images=2500)
    resolved = config.resolve("photo64ada", n_images=2500)
    assert resolved.replace(preset="photo64cpu") == measured
    assert (resolved.diffaugment, resolved.ada_target) != (cpu.diffaugment, cpu.ada_target)


def test_a_run_resumed_by_its_preset_keeps_the_values_it_began_with(tmp_path, monkeypatch, capsys):
    """photo64cpu's R1 weight changed (0.05 -> 0.2): rerunning the README's command on a run
    begun before must resume it as it began, not be refused as a different setup."""
    monkeypatch.setattr(config, "auto_precision", lambda: ("mixed_bfloat16", "test CPU"))
    run_dir, photos = tmp_path / "run", str(tmp_path / "photos")
    began = config.resolve("photo64cpu", settings={"r1_gamma": 0.05}, data=photos)
    RunPaths(run_dir).root.mkdir()
    RunPaths(run_dir).config.write_text(began.to_json())
    resumed = config.resolve("photo64cpu", data=photos, run_dir=run_dir)
    assert resumed.r1_gamma == 0.05 and config.diff_identity(began, resumed) == {}
    said = capsys.readouterr().out
    assert "keeps its r1_gamma=0.05 (the preset's is now 0.2)" in said and str(run_dir) in said
    # what the user asks for still wins (and reconcile_config then refuses the mix)...
    asked = config.resolve("photo64cpu", settings={"r1_gamma": 0.2}, data=photos, run_dir=run_dir)
    assert config.diff_identity(began, asked) == {"r1_gamma": (0.05, 0.2)}
    ada = config.resolve("photo64ada", data=photos, run_dir=run_dir)   # another preset: another run
    assert (ada.preset, ada.diffaugment) == ("photo64ada", "color,translation")
    assert capsys.readouterr().out == ""
    other = config.resolve("photo64cpu", data=str(tmp_path / "other"), run_dir=run_dir)
    assert set(config.diff_identity(began, other)) == {"data"}   # other photos: still refused


def test_an_unreadable_run_config_is_left_to_train_to_report(tmp_path):
    """keep_runs_recipe reads the run's config.json; a broken one must still reach train's
    reconcile_config, whose error says what to do (a new run folder, or delete it)."""
    RunPaths(tmp_path).config.write_text("[1, 2]")
    assert config.resolve("photo64cpu", run_dir=tmp_path).r1_gamma == 0.2
    with pytest.raises(ConfigError, match="is not a cargan_tf config.json"):
        config.resolve("photo64cpu", run_dir=tmp_path, minutes=5)   # as before: --minutes reads it


def test_small32_is_quick32_with_ada_and_a_step_budget():
    small, quick = config.preset("small32"), config.preset("quick32")
    assert (small.steps, small.data_n, small.ada_target, small.diffaugment) == \
        (12288, 400, 0.6, "color,translation,cutout")
    assert config.epochs_for_steps(small, 400 // small.batch_size).epochs == 2048
    same = {k for k in config.IDENTITY_KEYS if getattr(small, k) == getattr(quick, k)}
    assert set(config.IDENTITY_KEYS) - same == {"preset", "data_n", "diffaugment", "ada_target"}
    assert config.smoke(small).steps == 0  # --smoke stays seconds long


def test_parse_override_types():
    assert config.parse_override("lr_g=1e-4") == ("lr_g", 1e-4)
    assert config.parse_override("batchnorm=false") == ("batchnorm", False)
    assert config.parse_override("epochs=3") == ("epochs", 3)
    assert config.parse_override("real_label_range=0.7,0.95") == ("real_label_range", (0.7, 0.95))
    assert config.parse_override("data_n=none") == ("data_n", None)
    with pytest.raises(ConfigError, match="not a valid int"):
        config.parse_override("epochs=many")
    with pytest.raises(ConfigError, match="key=value"):
        config.parse_override("epochs")


def test_diffs_name_the_changed_keys():
    old = config.preset("aim64")
    new = old.replace(epochs=50, image_size=32)
    assert config.diff_identity(old, new) == {"image_size": (64, 32)}
    assert config.diff_schedule(old, new) == {"epochs": (25, 50)}


def test_smoke_is_tiny_but_keeps_the_architecture_family():
    cfg = config.smoke(config.preset("fashion28"))
    assert cfg.image_size == 28 and cfg.architecture == "fashion28" and cfg.data_n == 64
    assert config.smoke(config.preset("aim64")).image_size == 16


@pytest.mark.parametrize("env,expected", [(None, "True"), ("0", "False")])
def test_importing_cargan_tf_turns_on_onednn_unless_told_not_to(env, expected):
    """TensorFlow leaves its oneDNN CPU kernels off on CPUs without AVX-512 (1.8x slower
    training there); importing cargan_tf before TensorFlow asks for them, and a user's
    TF_ENABLE_ONEDNN_OPTS=0 still wins."""
    environ = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if env is not None:
        environ["TF_ENABLE_ONEDNN_OPTS"] = env
    code = ("import cargan_tf, tensorflow\n"
            "from tensorflow.python.util import _pywrap_util_port as port\n"
            "print(port.IsMklEnabled())")
    out = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == expected


@pytest.mark.parametrize("override,key", [
    ("data_n=-5", "data_n"), ("seed=-1", "seed"), ("kernel_size=0", "kernel_size"),
    ("dropout=2", "dropout"), ("real_label_range=0.8", "real_label_range"),
    ("lr_g=-1", "lr_g"), ("keep_checkpoints=-1", "keep_checkpoints"),
    ("batch_size=0", "batch_size"), ("latent_dim=0", "latent_dim"), ("epochs=-3", "epochs"),
])
def test_a_bad_value_names_its_key(override, key):
    from cargan_tf.config import parse_override, preset

    k, value = parse_override(override)
    with pytest.raises(ConfigError, match=f"^{key}=.* is not valid"):
        preset("quick32").replace(**{k: value})


# ---- resolve: the final config, made in one place ------------------------------------------------

def test_resolve_applies_smoke_first_then_overrides_length_and_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = config.resolve("small32", {"lr_g": 1e-4, "batch_size": None}, data="photos/",
                         smoke=True, epochs=3)
    assert cfg.preset == "small32" and cfg.image_size == 16        # smoke's size
    assert (cfg.lr_g, cfg.batch_size) == (1e-4, 16)                # None: the preset's (smoke)
    assert (cfg.epochs, cfg.steps) == (3, 0)                       # epochs clear the budget
    assert cfg.data == str(tmp_path / "photos")                    # made absolute
    assert config.resolve("quick32", data="c16", base=tmp_path / "home").data == \
        str(tmp_path / "home" / "c16")                              # a notebook's home
    assert config.resolve().preset == "quick32"                    # the default preset
    with pytest.raises(ConfigError, match="give one length, not both"):
        config.resolve("quick32", epochs=2, steps=10)


def test_resolve_resumes_with_the_run_folders_own_config(tmp_path, capsys):
    from cargan_tf.runs import RunPaths

    run = tmp_path / "run"
    run.mkdir()
    saved = config.preset("dcgan64", data=str(tmp_path), epochs=7)
    RunPaths(run).config.write_text(saved.to_json())
    cfg = config.resolve(run_dir=run, epochs=9)
    assert cfg == saved.replace(epochs=9)
    assert "resuming with the run's own config" in capsys.readouterr().out
    assert config.resolve("quick32", run_dir=run).preset == "quick32"  # a preset named: it
    config_file = tmp_path / "other.json"
    config_file.write_text(config.preset("aim64").to_json())
    assert config.resolve(run_dir=run, config_file=config_file).preset == "aim64"


def test_finish_turns_a_step_budget_into_epochs_once(monkeypatch):
    cfg = config.resolve("small32", n_images=400)                  # 400 // 64 = 6 batches
    assert (cfg.steps, cfg.epochs) == (12288, 2048)
    assert config.finish(cfg, 400) == cfg                          # applied twice: no change
    assert config.finish(config.preset("quick32"), 8192) == config.preset("quick32")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:1"]}, '
                                    '"task": {"type": "worker", "index": 1}}')
    worker = config.finish(config.preset("quick32", engine="fused", strategy="multiworker"))
    assert worker.progress is False                                # a non-chief worker
    chief = config.preset("quick32", strategy="mirrored")
    assert config.finish(chief).progress is True


def test_the_default_run_name_is_one_rule():
    from cargan_tf.runs import run_name

    assert run_name("quick32", "toycars") == "quick32-toycars"
    assert run_name("aim64", "/data/prepared/cars_64/", smoke=True) == "aim64-cars_64-smoke"
    assert run_name("fashion28", "fashion_mnist:/data/fm") == "fashion28-fm"


def test_auto_precision_is_bf16_only_on_a_cpu_that_does_bf16_without_a_gpu(tmp_path):
    from cargan_tf.env import auto_precision, cpu_flags, nvidia_gpu_present

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\n"
                       "flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n\n"
                       "processor\t: 1\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n")
    assert "avx512_bf16" in cpu_flags(cpuinfo) and "avx2" in cpu_flags(cpuinfo)
    assert cpu_flags(tmp_path / "missing") == frozenset()
    bf16_cpu, old_cpu = cpu_flags(cpuinfo), frozenset({"avx2", "avx512f"})
    assert auto_precision(bf16_cpu, gpu=False)[0] == "mixed_bfloat16"
    assert auto_precision(frozenset({"amx_bf16"}), gpu=False)[0] == "mixed_bfloat16"
    choice, why = auto_precision(old_cpu, gpu=False)
    assert choice == "float32" and "no bfloat16 instructions" in why
    choice, why = auto_precision(bf16_cpu, gpu=True)              # a Colab T4 box with a new CPU
    assert choice == "float32" and "GPU" in why
    dev = tmp_path / "dev"
    dev.mkdir()
    assert nvidia_gpu_present(dev) is False
    (dev / "nvidiactl").touch()                                    # the driver, no GPU file
    assert nvidia_gpu_present(dev) is False
    (dev / "nvidia0").touch()
    assert nvidia_gpu_present(dev) is True


def test_finish_settles_precision_auto_into_a_real_policy_once(monkeypatch):
    monkeypatch.setattr(config, "auto_precision", lambda: ("mixed_bfloat16", "test CPU"))
    cfg = config.resolve("photo64", settings={"precision": "auto"}, n_images=2500)
    assert cfg.precision == "mixed_bfloat16"                       # config.json never says auto
    assert config.finish(cfg, 2500) == cfg
    monkeypatch.setattr(config, "auto_precision", lambda: ("float32", "test CPU"))
    assert config.resolve("photo64", settings={"precision": "auto"}).precision == "float32"
    assert config.resolve("photo64").precision == "float32"       # only auto is touched
