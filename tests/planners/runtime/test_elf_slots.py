"""planners.runtime.elf_slots: slots read from synthetic ELF files (x86-64 and Arm64), and rewritten in real libraries."""

from __future__ import annotations

import ctypes
import glob
import mmap
import os
import shutil
import struct
import subprocess
import sys

import pytest

from planners.runtime import blas, elf_slots

LINUX = sys.platform.startswith("linux")
needs_linux = pytest.mark.skipif(not LINUX, reason="GOT slots are patched on Linux only")

RELRO_START, PLT_START, MEMSZ = 0x1000, 0x2000, 0x3000


def _synthetic_elf(machine: int, glob_dat: int, jump_slot: int, decoy: int) -> bytes:
    """A minimal ELF64 shared object image: one ``PT_LOAD`` over the whole file at vaddr 0.

    It imports ``cblas_sgemm`` (GOT slot ``RELRO_START`` via ``GLOB_DAT`` in ``.rela.dyn``, PLT slot
    ``PLT_START`` via ``JUMP_SLOT``) and ``cblas_dgemm`` (PLT slot ``PLT_START + 8``), plus a decoy
    relocation of type ``decoy`` against ``cblas_sgemm`` that must not count.
    """
    strings = b"\0cblas_sgemm\0cblas_dgemm\0"
    symbols = b"".join(struct.pack("<IBBHQQ", name, info, 0, 0, 0, 0) for name, info in [(0, 0), (1, 0x12), (13, 0x12)])
    def rela(offset, symbol, kind):
        return struct.pack("<QQq", offset, (symbol << 32) | kind, 0)

    rela_dyn = rela(RELRO_START, 1, glob_dat) + rela(RELRO_START + 8, 1, decoy)
    rela_plt = rela(PLT_START, 1, jump_slot) + rela(PLT_START + 8, 2, jump_slot)
    phoff, phnum = 64, 3
    strtab = phoff + phnum * 56
    symtab = strtab + len(strings) + (-len(strings)) % 8
    reladyn = symtab + len(symbols)
    relaplt = reladyn + len(rela_dyn)
    dynamic_at = relaplt + len(rela_plt)
    dynamic = b"".join(struct.pack("<qQ", tag, value) for tag, value in [
        (5, strtab), (6, symtab), (10, len(strings)), (11, 24), (7, reladyn), (8, len(rela_dyn)), (9, 24),
        (23, relaplt), (2, len(rela_plt)), (20, 7), (0, 0)])
    size = dynamic_at + len(dynamic)
    header = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 3, machine, 1, 0, phoff, 0, 0,
                         64, 56, phnum, 64, 0, 0)
    phdrs = (struct.pack("<IIQQQQQQ", 1, 6, 0, 0, 0, size, MEMSZ, 0x1000)
             + struct.pack("<IIQQQQQQ", 2, 6, dynamic_at, dynamic_at, dynamic_at, len(dynamic), len(dynamic), 8)
             + struct.pack("<IIQQQQQQ", 0x6474E552, 4, RELRO_START, RELRO_START, RELRO_START, 0x1000, 0x1000, 1))
    body = header + phdrs + strings + bytes(symtab - strtab - len(strings)) + symbols + rela_dyn + rela_plt + dynamic
    assert len(body) == size
    return body


MACHINES = {
    "x86-64": (62, 6, 7, 1026),  # e_machine, GLOB_DAT, JUMP_SLOT, a decoy: Arm64's JUMP_SLOT
    "arm64": (183, 1025, 1026, 7),  # decoy: x86-64's JUMP_SLOT (R_AARCH64 type 7 is not a GOT slot)
}


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_slots_of_a_synthetic_library(tmp_path, machine):
    path = tmp_path / "libfake.so"
    image = _synthetic_elf(*MACHINES[machine])
    path.write_bytes(image)
    raw, found, _ = elf_slots.file_slots(str(path), ["cblas_sgemm"])
    assert found == [(RELRO_START, "cblas_sgemm", "GLOB_DAT"), (PLT_START, "cblas_sgemm", "JUMP_SLOT")]
    assert elf_slots.file_slots(str(path), ["cblas_dgemm"])[1] == [(PLT_START + 8, "cblas_dgemm", "JUMP_SLOT")]
    base = 0x7F0000000000
    slots = elf_slots.symbol_slots(elf_slots.LoadedObject(str(path), base, raw), ["cblas_sgemm"])
    assert [(s.address, s.kind, s.in_relro) for s in slots] == [
        (base + RELRO_START, "GLOB_DAT", True), (base + PLT_START, "JUMP_SLOT", False)]


def test_a_replaced_file_or_other_machine_is_refused(tmp_path):
    path = tmp_path / "libfake.so"
    path.write_bytes(_synthetic_elf(*MACHINES["x86-64"]))
    raw, _, _ = elf_slots.file_slots(str(path), ["cblas_sgemm"])
    other = raw[:-8] + struct.pack("<Q", 2)  # the loaded copy's program headers differ
    with pytest.raises(elf_slots.ElfError, match="differ from the loaded copy"):
        elf_slots.symbol_slots(elf_slots.LoadedObject(str(path), 0, other), ["cblas_sgemm"])
    image = bytearray(_synthetic_elf(*MACHINES["x86-64"]))
    image[18:20] = struct.pack("<H", 40)  # e_machine: 32-bit Arm
    path.write_bytes(bytes(image))
    with pytest.raises(elf_slots.ElfError, match="unsupported e_machine 40"):
        elf_slots.file_slots(str(path), ["cblas_sgemm"])
    path.write_bytes(b"#!/bin/sh\n" + bytes(100))
    with pytest.raises(elf_slots.ElfError, match="not an ELF file"):
        elf_slots.file_slots(str(path), ["cblas_sgemm"])


@needs_linux
def test_mlx_imports_cblas_sgemm_through_one_found_slot():
    import mlx.core as mx

    slots = elf_slots.slots_under(os.path.dirname(os.path.realpath(mx.__file__)), ["cblas_sgemm"])
    assert slots and all(os.path.basename(s.owner).startswith("libmlx") for s in slots)
    assert all(s.kind in {"JUMP_SLOT", "GLOB_DAT"} for s in slots)


@needs_linux
def test_write_pointer_through_a_read_only_page():
    area = mmap.mmap(-1, mmap.PAGESIZE)
    cell = ctypes.c_uint64.from_buffer(area, 64)
    address = ctypes.addressof(cell)
    elf_slots._mprotect(address - 64, mmap.PROT_READ)
    try:
        assert elf_slots._protection(address) == mmap.PROT_READ
        elf_slots.write_pointer(address, 0x1234_5678_9ABC)
        assert elf_slots.read_pointer(address) == 0x1234_5678_9ABC
        assert elf_slots._protection(address) == mmap.PROT_READ  # protection given back
    finally:
        elf_slots._mprotect(address - 64, mmap.PROT_READ | mmap.PROT_WRITE)
        del cell
        area.close()


USER_C = """
void cblas_sgemm(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
void product(int m, int n, int k, const float *a, const float *b, float *c) {
    cblas_sgemm(101, 111, 111, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
}
"""


def _reference_blas() -> str:
    """MLX's bundled reference BLAS (the ``mlx[cpu]`` wheel's ``mlx_cpu.libs``)."""
    import mlx.core as mx

    found = glob.glob(os.path.join(os.path.dirname(os.path.realpath(mx.__file__)), "..", "mlx*.libs", "libblas*.so*"))
    if not found:
        pytest.skip("no bundled reference BLAS (not the mlx[cpu] wheel)")
    return os.path.realpath(found[0])


@needs_linux
@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build a test library")
@pytest.mark.parametrize("flags, kind, relro", [
    (["-Wl,-z,relro,-z,now", "-fno-plt"], "GLOB_DAT", True),
    (["-Wl,-z,relro,-z,now"], "JUMP_SLOT", True),
    (["-Wl,-z,relro,-z,lazy"], "JUMP_SLOT", False),
])
def test_patch_and_restore_a_compiled_library(tmp_path, flags, kind, relro):
    """A library calling the reference ``cblas_sgemm`` is redirected to OpenBLAS's and back, RELRO or not."""
    if not blas.status().active or not blas._HANDLES:
        pytest.skip("no optimised BLAS loaded in this process")
    reference = _reference_blas()
    (tmp_path / "user.c").write_text(USER_C)
    library = str(tmp_path / f"libuser-{kind}-{relro}.so")
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", *flags, "-o", library, str(tmp_path / "user.c"), reference,
                    f"-Wl,-rpath,{os.path.dirname(reference)}"], check=True, capture_output=True)
    user = ctypes.CDLL(library)
    slots = elf_slots.slots_under(str(tmp_path), ["cblas_sgemm"])
    assert [(s.kind, s.in_relro) for s in slots] == [(kind, relro)]
    address = slots[0].address
    before, protection = elf_slots.read_pointer(address), elf_slots._protection(address)
    assert elf_slots.symbol_at(before)[1] == "cblas_sgemm"
    assert bool(protection & mmap.PROT_WRITE) is not relro
    openblas = ctypes.cast(blas._HANDLES[0].cblas_sgemm, ctypes.c_void_p).value
    patches = elf_slots.patch(slots, openblas)
    try:
        assert elf_slots.read_pointer(address) == openblas
        assert elf_slots._protection(address) == protection
        a = (ctypes.c_float * 6)(1, 2, 3, 4, 5, 6)  # [2, 3]
        b = (ctypes.c_float * 6)(1, 0, -1, 2, 0, 1)  # [3, 2]
        c = (ctypes.c_float * 4)()
        user.product(2, 2, 3, a, b, c)
        assert list(c) == [sum(a[3 * i + t] * b[2 * t + j] for t in range(3)) for i in range(2) for j in range(2)]
    finally:
        elf_slots.restore(patches)
    assert elf_slots.read_pointer(address) == before and elf_slots._protection(address) == protection


@needs_linux
def test_a_slot_holding_an_unexpected_value_is_refused():
    area = mmap.mmap(-1, mmap.PAGESIZE)
    cell = ctypes.c_uint64.from_buffer(area)
    cell.value = 0x10  # points at no symbol, in no library
    slot = elf_slots.Slot(ctypes.addressof(cell), "cblas_sgemm", "JUMP_SLOT", False, "/nonexistent/libx.so")
    with pytest.raises(elf_slots.ElfError, match="holds 0x10"):
        elf_slots.patch([slot], 0x20)
    assert cell.value == 0x10
    del cell
    area.close()
