"""Find and rewrite the GOT slots through which a loaded ELF shared library calls an imported function.

A shared library calls a function of another library through a pointer-sized slot of its global
offset table (GOT): a ``JUMP_SLOT`` relocation (the PLT's slot) or a ``GLOB_DAT`` one (``-fno-plt``
code, or a function whose address is taken). The dynamic linker writes the target's address there;
writing another function's address afterwards redirects every later call. This module finds those
slots from the library's own tables and writes them; it knows nothing of BLAS or MLX.

How, and why this way:

* Loaded objects and their load bias come from ``dl_iterate_phdr`` (through ctypes): the dynamic
  linker's own record, exact for every layout, including libraries rewritten by ``patchelf`` whose
  segments are not in file order. ``/proc/self/maps`` would have to be matched to the file's
  segments to recover the same number.
* The tables are read from the library *file*, through its dynamic section (``DT_JMPREL`` /
  ``DT_PLTRELSZ``, ``DT_RELA`` / ``DT_RELASZ``, ``DT_SYMTAB``, ``DT_STRTAB``): the loaded copy's
  dynamic section has been rebased in place by glibc (not by musl), so its addresses are ambiguous,
  and section headers may be stripped. The file's program headers must equal the loaded copy's
  byte for byte, or nothing is done (the file could have been replaced since it was loaded).
* A slot's page may be read-only: with full RELRO (``-z now``) the GOT lies in ``PT_GNU_RELRO``,
  which the loader makes read-only after relocating. :func:`write_pointer` then makes the one page
  writable with ``mprotect`` for the single aligned 8-byte store and restores the protection it had
  (read from ``/proc/self/maps``); if ``mprotect`` is refused (sealed mappings, a hardened kernel),
  it raises and nothing was written.

Only 64-bit little-endian ELF is read, with ``e_machine`` x86-64 (``R_X86_64_JUMP_SLOT`` = 7,
``R_X86_64_GLOB_DAT`` = 6) or Arm64 (``R_AARCH64_JUMP_SLOT`` = 1026, ``R_AARCH64_GLOB_DAT`` =
1025); anything else raises :class:`ElfError`. Nothing here imports MLX.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator

__all__ = [
    "ElfError", "LoadedObject", "Patch", "Slot", "file_slots", "loaded_objects", "patch", "read_pointer",
    "restore", "slots_under", "symbol_at", "symbol_slots", "write_pointer",
]

EM_X86_64, EM_AARCH64 = 62, 183
RELOCATION_KINDS = {
    EM_X86_64: {7: "JUMP_SLOT", 6: "GLOB_DAT"},
    EM_AARCH64: {1026: "JUMP_SLOT", 1025: "GLOB_DAT"},
}
"""``e_machine`` -> {relocation type: kind} of the relocations that fill a GOT slot with a symbol's address."""

PT_LOAD, PT_DYNAMIC, PT_GNU_RELRO = 1, 2, 0x6474E552
DT_NULL, DT_PLTRELSZ, DT_STRTAB, DT_SYMTAB, DT_RELA, DT_RELASZ = 0, 2, 5, 6, 7, 8
DT_RELAENT, DT_STRSZ, DT_SYMENT, DT_PLTREL, DT_JMPREL, DT_REL = 9, 10, 11, 20, 23, 17

_EHDR = struct.Struct("<16sHHIQQQIHHH")  # e_ident .. e_phnum
_PHDR = struct.Struct("<IIQQQQQQ")  # p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align
_DYN = struct.Struct("<qQ")
_RELA = struct.Struct("<QQq")
_SYM_NAME = struct.Struct("<I")  # st_name, the first field of Elf64_Sym
POINTER_SIZE = 8


class ElfError(Exception):
    """The library's file cannot be read as the loaded ELF object, or a slot is not what it should be."""


@dataclass(frozen=True)
class LoadedObject:
    """One object in the dynamic linker's list (``dl_iterate_phdr``).

    Attributes:
        path: the name the linker recorded (``""`` for the main program).
        base: the load bias: the object's virtual address ``v`` lies at ``base + v`` in memory.
        program_headers: the loaded copy's program headers, raw bytes (``phnum * 56``).
    """

    path: str
    base: int
    program_headers: bytes


@dataclass(frozen=True)
class Slot:
    """A GOT slot that the dynamic linker fills with ``symbol``'s address.

    Attributes:
        address: absolute address of the 8-byte slot in this process.
        symbol: the imported symbol's name.
        kind: ``"JUMP_SLOT"`` (PLT) or ``"GLOB_DAT"``.
        in_relro: whether the slot lies in the object's ``PT_GNU_RELRO`` range (read-only once loaded).
        owner: path of the object the slot belongs to.
    """

    address: int
    symbol: str
    kind: str
    in_relro: bool
    owner: str


@dataclass(frozen=True)
class Patch:
    """A slot rewritten by :func:`patch`, with the value it held before (``restore`` writes it back)."""

    slot: Slot
    old: int
    new: int


# --- the loaded objects ------------------------------------------------------------------------

class _PhdrInfo(ctypes.Structure):
    """The leading fields of ``struct dl_phdr_info`` (the rest is not needed)."""

    _fields_ = [
        ("dlpi_addr", ctypes.c_size_t),
        ("dlpi_name", ctypes.c_char_p),
        ("dlpi_phdr", ctypes.c_void_p),
        ("dlpi_phnum", ctypes.c_uint16),
    ]


_PHDR_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(_PhdrInfo), ctypes.c_size_t, ctypes.c_void_p)


def loaded_objects() -> list[LoadedObject]:
    """Every object the dynamic linker has loaded into this process, in its order."""
    found: list[LoadedObject] = []

    def visit(info, _size, _data) -> int:
        entry = info.contents
        headers = ctypes.string_at(entry.dlpi_phdr, entry.dlpi_phnum * _PHDR.size) if entry.dlpi_phdr else b""
        found.append(LoadedObject(os.fsdecode(entry.dlpi_name or b""), int(entry.dlpi_addr), headers))
        return 0

    _libc_function("dl_iterate_phdr")(_PHDR_CALLBACK(visit), None)
    return found


def _libc_function(name: str):
    """``name`` from the process's global scope (libc), else from ``libdl`` (glibc before 2.34)."""
    for library in (_libc(), _libdl()):
        function = getattr(library, name, None) if library is not None else None
        if function is not None:
            return function
    raise ElfError(f"{name} is not available in this process")


_LIBRARIES: dict[str, ctypes.CDLL | None] = {}


def _libc() -> ctypes.CDLL:
    if "c" not in _LIBRARIES:
        _LIBRARIES["c"] = ctypes.CDLL(None, use_errno=True)
    return _LIBRARIES["c"]


def _libdl() -> ctypes.CDLL | None:
    if "dl" not in _LIBRARIES:
        name = ctypes.util.find_library("dl")
        try:
            _LIBRARIES["dl"] = ctypes.CDLL(name, use_errno=True) if name else None
        except OSError:
            _LIBRARIES["dl"] = None
    return _LIBRARIES["dl"]


# --- reading the file --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Segment:
    kind: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int


def _read(f: BinaryIO, offset: int, size: int) -> bytes:
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise ElfError(f"{getattr(f, 'name', 'file')}: truncated at offset {offset:#x}")
    return data


def _header(f: BinaryIO) -> tuple[int, int, int]:
    """``(e_machine, e_phoff, e_phnum)`` of a 64-bit little-endian ELF file with a supported machine."""
    ident, _type, machine, _v, _entry, phoff, _shoff, _flags, _ehsize, phentsize, phnum = _EHDR.unpack(
        _read(f, 0, _EHDR.size))
    if ident[:4] != b"\x7fELF":
        raise ElfError("not an ELF file")
    if ident[4] != 2 or ident[5] != 1:
        raise ElfError("only 64-bit little-endian ELF is supported")
    if machine not in RELOCATION_KINDS:
        raise ElfError(f"unsupported e_machine {machine} (x86-64 and Arm64 only)")
    if phentsize != _PHDR.size or phnum in (0, 0xFFFF):
        raise ElfError(f"unexpected program header table ({phnum} entries of {phentsize} bytes)")
    return machine, phoff, phnum


def _segments(raw: bytes) -> list[_Segment]:
    """The program headers ``raw`` (``phnum * 56`` bytes) as segments."""
    return [_Segment(kind, offset, vaddr, filesz, memsz)
            for kind, _flags, offset, vaddr, _paddr, filesz, memsz, _align in _PHDR.iter_unpack(raw)]


def _file_offset(segments: list[_Segment], vaddr: int, size: int) -> int:
    """Where the ``size`` bytes at virtual address ``vaddr`` lie in the file."""
    for seg in segments:
        if seg.kind == PT_LOAD and seg.vaddr <= vaddr and vaddr + size <= seg.vaddr + seg.filesz:
            return seg.offset + vaddr - seg.vaddr
    raise ElfError(f"virtual address {vaddr:#x} (+{size}) is in no loadable segment of the file")


def _dynamic(f: BinaryIO, segments: list[_Segment]) -> dict[int, int]:
    """The dynamic section's entries ``{tag: value}`` (the first of each tag; values are file vaddrs)."""
    dynamic = [seg for seg in segments if seg.kind == PT_DYNAMIC]
    if not dynamic:
        raise ElfError("no dynamic section")
    entries: dict[int, int] = {}
    for tag, value in _DYN.iter_unpack(_read(f, dynamic[0].offset, dynamic[0].filesz - dynamic[0].filesz % _DYN.size)):
        if tag == DT_NULL:
            break
        entries.setdefault(tag, value)
    return entries


def _relocation_tables(dyn: dict[int, int]) -> list[tuple[int, int]]:
    """``(vaddr, size)`` of ``.rela.dyn`` and ``.rela.plt`` as the dynamic section names them."""
    if dyn.get(DT_RELAENT, _RELA.size) != _RELA.size:
        raise ElfError(f"unexpected relocation entry size {dyn[DT_RELAENT]}")
    tables = []
    if DT_RELA in dyn and dyn.get(DT_RELASZ):
        tables.append((dyn[DT_RELA], dyn[DT_RELASZ]))
    if DT_JMPREL in dyn and dyn.get(DT_PLTRELSZ):
        if dyn.get(DT_PLTREL, DT_RELA) != DT_RELA:
            raise ElfError("PLT relocations are not RELA")
        tables.append((dyn[DT_JMPREL], dyn[DT_PLTRELSZ]))
    return tables


def _symbol_names(f: BinaryIO, segments: list[_Segment], dyn: dict[int, int], count: int) -> list[bytes]:
    """The names of the first ``count`` entries of the dynamic symbol table."""
    if DT_SYMTAB not in dyn or DT_STRTAB not in dyn or DT_STRSZ not in dyn:
        raise ElfError("no dynamic symbol table")
    entry = dyn.get(DT_SYMENT, 24)
    strings = _read(f, _file_offset(segments, dyn[DT_STRTAB], dyn[DT_STRSZ]), dyn[DT_STRSZ])
    table = _read(f, _file_offset(segments, dyn[DT_SYMTAB], count * entry), count * entry)
    names = []
    for index in range(count):
        (start,) = _SYM_NAME.unpack_from(table, index * entry)
        end = strings.find(b"\0", start)
        if start >= len(strings) or end < 0:
            raise ElfError(f"symbol {index}: name outside the string table")
        names.append(strings[start:end])
    return names


def _got_relocations(f: BinaryIO, segments: list[_Segment], dyn: dict[int, int], kinds: dict[int, str]):
    """``(vaddr, symbol index, kind)`` of every relocation that fills a GOT slot with a symbol's address."""
    found = []
    for vaddr, size in _relocation_tables(dyn):
        table = _read(f, _file_offset(segments, vaddr, size), size - size % _RELA.size)
        for offset, info, _addend in _RELA.iter_unpack(table):
            kind = kinds.get(info & 0xFFFFFFFF)
            if kind is not None and info >> 32:
                found.append((offset, info >> 32, kind))
    return found


def file_slots(path: str, symbols: Iterable[str]) -> tuple[bytes, list[tuple[int, str, str]], list[_Segment]]:
    """Read ``path``'s GOT slots for ``symbols``.

    Returns:
        ``(program_headers, slots, segments)``: the file's raw program headers, one
        ``(vaddr, symbol, kind)`` per slot (virtual addresses of the file, sorted, without
        duplicates), and the segments.
    """
    wanted = {name.encode("ascii") for name in symbols}
    with open(path, "rb") as f:
        machine, phoff, phnum = _header(f)
        raw = _read(f, phoff, phnum * _PHDR.size)
        segments = _segments(raw)
        dyn = _dynamic(f, segments)
        relocations = _got_relocations(f, segments, dyn, RELOCATION_KINDS[machine])
        names = _symbol_names(f, segments, dyn, 1 + max((index for _, index, _ in relocations), default=0))
    slots = {(offset, names[index].decode("ascii"), kind)
             for offset, index, kind in relocations if names[index] in wanted}
    return raw, sorted(slots), segments


def symbol_slots(obj: LoadedObject, symbols: Iterable[str]) -> list[Slot]:
    """The GOT slots through which loaded object ``obj`` reaches ``symbols``, as absolute addresses.

    Raises:
        ElfError: the file cannot be read, is not the copy that was loaded, or a slot lies outside
            the object's writable data.
        OSError: the file cannot be opened.
    """
    raw, found, segments = file_slots(obj.path, symbols)
    if raw != obj.program_headers:
        raise ElfError(f"{obj.path}: the file's program headers differ from the loaded copy's")
    relro = [(seg.vaddr, seg.vaddr + seg.memsz) for seg in segments if seg.kind == PT_GNU_RELRO]
    slots = []
    for vaddr, symbol, kind in found:
        if vaddr % POINTER_SIZE or not any(
                seg.kind == PT_LOAD and seg.vaddr <= vaddr and vaddr + POINTER_SIZE <= seg.vaddr + seg.memsz
                for seg in segments):
            raise ElfError(f"{obj.path}: slot of {symbol} at {vaddr:#x} is misaligned or outside its segments")
        in_relro = any(start <= vaddr < stop for start, stop in relro)
        slots.append(Slot(obj.base + vaddr, symbol, kind, in_relro, obj.path))
    return slots


# --- reading and writing memory ----------------------------------------------------------------

class _DlInfo(ctypes.Structure):
    _fields_ = [
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    ]


def symbol_at(address: int) -> tuple[str | None, str | None]:
    """``(file, symbol)`` that ``dladdr`` reports for ``address``; ``symbol`` only for an exact match."""
    dladdr = _libc_function("dladdr")
    dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
    info = _DlInfo()
    if not address or not dladdr(ctypes.c_void_p(address), ctypes.byref(info)):
        return None, None
    file = os.fsdecode(info.dli_fname) if info.dli_fname else None
    exact = info.dli_sname and info.dli_saddr == address
    return file, (info.dli_sname.decode("ascii", "replace") if exact else None)


def read_pointer(address: int) -> int:
    """The 8-byte value at ``address``."""
    return ctypes.c_uint64.from_address(address).value


def _protection(address: int) -> int:
    """The ``PROT_*`` bits of the mapping holding ``address``, from ``/proc/self/maps``."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            span, perms = line.split()[:2]
            start, stop = (int(x, 16) for x in span.split("-"))
            if start <= address < stop:
                return ((mmap.PROT_READ if perms[0] == "r" else 0) | (mmap.PROT_WRITE if perms[1] == "w" else 0)
                        | (mmap.PROT_EXEC if perms[2] == "x" else 0))
    raise ElfError(f"address {address:#x} is not mapped")


def _mprotect(page: int, protection: int) -> None:
    mprotect = _libc_function("mprotect")
    mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if mprotect(ctypes.c_void_p(page), mmap.PAGESIZE, protection) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mprotect of page {page:#x}: {os.strerror(err)}")


def write_pointer(address: int, value: int) -> None:
    """Store the 8-byte ``value`` at the aligned ``address`` (one store), through a read-only page too.

    A read-only page (a RELRO GOT) is made writable for the store and given back its protection.

    Raises:
        OSError: ``mprotect`` refused (nothing was written), or restoring the protection failed
            (the value was written).
    """
    if address % POINTER_SIZE:
        raise ElfError(f"misaligned slot {address:#x}")
    protection = _protection(address)
    if protection & mmap.PROT_WRITE:
        ctypes.c_uint64.from_address(address).value = value
        return
    page = address - address % mmap.PAGESIZE
    _mprotect(page, protection | mmap.PROT_WRITE)
    try:
        ctypes.c_uint64.from_address(address).value = value
    finally:
        _mprotect(page, protection)


# --- patching ----------------------------------------------------------------------------------

def _check_current(slot: Slot, value: int, new: int) -> None:
    """Refuse a slot that holds neither ``slot.symbol`` (per ``dladdr``), nor ``new``, nor a lazy stub.

    An unresolved lazy-binding slot points into its own object (the PLT); any other value means the
    tables were misread, and writing would corrupt memory.
    """
    if value == new:
        return
    file, symbol = symbol_at(value)
    if symbol == slot.symbol:
        return
    if file is not None and os.path.realpath(file) == os.path.realpath(slot.owner):
        return
    raise ElfError(f"slot of {slot.symbol} at {slot.address:#x} holds {value:#x} ({symbol or 'no symbol'} in {file})")


def patch(slots: Iterable[Slot], new: int) -> list[Patch]:
    """Write address ``new`` into every slot (all or none: a failure restores those written, then raises).

    Raises:
        ElfError: a slot holds an unexpected value.
        OSError: a page could not be made writable.
    """
    slots = list(slots)
    olds = [read_pointer(slot.address) for slot in slots]
    for slot, old in zip(slots, olds):
        _check_current(slot, old, new)
    done: list[Patch] = []
    try:
        for slot, old in zip(slots, olds):
            write_pointer(slot.address, new)
            done.append(Patch(slot, old, new))
    except BaseException:
        restore(done)
        raise
    return done


def restore(patches: Iterable[Patch]) -> None:
    """Write back the values the patched slots held before, last patch first."""
    for item in reversed(list(patches)):
        write_pointer(item.slot.address, item.old)


def _iter_objects_under(folder: str) -> Iterator[LoadedObject]:
    root = os.path.realpath(folder) + os.sep
    for obj in loaded_objects():
        if obj.path and os.path.realpath(obj.path).startswith(root):
            yield obj


def slots_under(folder: str, symbols: Iterable[str]) -> list[Slot]:
    """The slots for ``symbols`` of every loaded object whose file lies under ``folder``."""
    symbols = list(symbols)
    return [slot for obj in _iter_objects_under(folder) for slot in symbol_slots(obj, symbols)]
