"""examples/look_inside.py and examples/profile_step.py run (with --quick) and print what they teach."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, os.path.join(ROOT, "examples", script), *args],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_look_inside_prints_the_tape_and_runs_its_hooks():
    out = run("look_inside.py", "--quick")
    assert "NativeBatchNormBackward0" in out and "AccumulateGrad (4, 1, 3, 3)" in out
    assert "total saved for backward:" in out
    assert "tensor hook: d loss / d BatchNorm output has norm" in out
    assert "full backward hook on BatchNorm2d: grad_output (2, 4, 8, 8)" in out


def test_profile_step_prints_the_table():
    out = run("profile_step.py", "--quick")
    assert "profiled 1 step(s)" in out and "Optimizer.step#Adam.step" in out
    assert "kernel:batch_norm.bn_stats" in out and "Self time total:" in out
