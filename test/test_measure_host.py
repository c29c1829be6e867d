"""The CPU a measurement names in its machine block (l2p_ros.measure.host)."""
import platform
from pathlib import Path

from l2p_ros.measure.host import cpu_model

X86 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: AMD EPYC
flags\t\t: fpu avx512_bf16

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: AMD EPYC
"""

ARM = """processor\t: 0
BogoMIPS\t: 62.50
CPU implementer\t: 0x41
CPU part\t: 0xd42

Model\t\t: NVIDIA Jetson AGX Orin Developer Kit
"""


def test_an_x86_cpu_is_named_with_its_family_and_model(tmp_path: Path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(X86)
    assert cpu_model(cpuinfo) == "AMD EPYC (family 26, model 2)"


def test_a_jetson_is_named_by_its_board(tmp_path: Path):
    # Jetson kernels write no "model name" per processor, and the board's "Model" after them all.
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(ARM)
    assert cpu_model(cpuinfo) == "NVIDIA Jetson AGX Orin Developer Kit"


def test_without_cpuinfo_what_platform_knows(tmp_path: Path):
    assert cpu_model(tmp_path / "missing") == (platform.processor() or platform.machine())


def test_this_machine_has_a_name():
    assert cpu_model().strip()
