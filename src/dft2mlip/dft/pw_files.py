"""What a pw.x run left beside its output: its input file and its XML data file.

Some pw.x outputs print no atomic positions (QE 7.x outputs of single points and relaxations
seen in the wild, or outputs trimmed by their authors), and none prints the k-point mesh. Both
are in the input file the output names (``Reading input from aiida.in``) and in the XML data
file (``data-file-schema.xml``, in the directory or in ``<outdir>/<prefix>.save/`` as printed).
These are read here; the output's own header checks what they hold (atom count, cell), so a
file that belongs to another run is never taken for this one.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.units import create_units

#: QE's own constants (CODATA 2006), as ASE's espresso readers use them
_BOHR_A = create_units("2006")["Bohr"]
_INPUT_NAME = re.compile(r"Reading input from\s+(\S+)")
_SAVE_DIR = re.compile(r"Writing (?:all to )?output data (?:dir|file)\s+(\S+)")
_NAT = re.compile(r"number of atoms/cell\s*=\s*(\d+)")
_CELLDM1 = re.compile(r"celldm\(1\)=\s*(\S+)")
_AXIS = re.compile(r"a\(\d\)\s*=\s*\(\s*(\S+)\s+(\S+)\s+(\S+)\s*\)")
#: largest difference (Å) between a file's cell and the one the output prints (6 decimals of alat)
CELL_TOLERANCE_A = 1e-3
_KPOINTS_CARD = re.compile(r"^\s*K_POINTS\s*[({]?\s*(\w*)", re.MULTILINE | re.IGNORECASE)
XML_NAME = "data-file-schema.xml"


@dataclass
class PwRunFiles:
    """The structures and k-points a pw.x run's input / XML hold (None where not found).

    ``initial`` is the structure pw.x started from (input file, else the XML's input section),
    ``final`` the one of its last step (the XML's output section). ``kpoints`` describes the
    sampling as the user gave it (:func:`mesh_record`, ``{"gamma": True}`` or a hash of the
    listed points), never what symmetry made of it. ``notes`` say why a file was not used.
    """

    initial: Atoms | None = None
    final: Atoms | None = None
    kpoints: dict | None = None
    sources: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: the file names looked for (for the message when none was there)
    looked_for: list[str] = field(default_factory=list)


def input_candidates(output: Path, text: str) -> list[Path]:
    """Input files of ``output``'s run that exist: the one it names, then ``pw.in``,
    ``<stem>.in``, ``<stem>.pwi`` in its directory (names only: a run moved elsewhere keeps
    its input beside the output)."""
    names = [Path(m.group(1)).name] if (m := _INPUT_NAME.search(text)) else []
    names += ["pw.in", f"{output.stem}.in", f"{output.stem}.pwi"]
    found = [output.parent / n for n in dict.fromkeys(names)]
    return [p for p in found if p.is_file() and p.resolve() != output.resolve()]


def xml_candidates(output: Path, text: str) -> list[Path]:
    """``data-file-schema.xml`` beside ``output`` or in the save directory it printed."""
    places = [output.parent / XML_NAME]
    if m := _SAVE_DIR.search(text):
        places.append(output.parent / m.group(1) / XML_NAME)
    return [p for p in dict.fromkeys(places) if p.is_file()]


def _xml_structure(node: ET.Element) -> Atoms:
    """ASE atoms of a QE XML ``atomic_structure`` element (bohr -> Å)."""
    names, positions = [], []
    for atom in node.iter("atom"):
        names.append(re.match(r"[A-Z][a-z]?", atom.get("name", "").capitalize()).group(0))
        positions.append([float(v) for v in atom.text.split()])
    cell = [[float(v) for v in node.find(f"cell/{a}").text.split()] for a in ("a1", "a2", "a3")]
    return Atoms(names, positions=np.array(positions) * _BOHR_A, cell=np.array(cell) * _BOHR_A,
                 pbc=True)  # fmt: skip


def _xml_kpoints(root: ET.Element) -> dict | None:
    mp = root.find("input/k_points_IBZ/monkhorst_pack")
    if mp is None:
        return None
    return mesh_record([mp.get(f"nk{i}") for i in (1, 2, 3)], [mp.get(f"k{i}") for i in (1, 2, 3)])


def mesh_record(mesh, offset) -> dict:
    """A pw.x automatic mesh as the settings hash records it: the mesh and its shift from Γ in
    fractions of a mesh step (pw.x's offset 1 is half a step), as for VASP."""
    return {"mesh": [int(n) for n in mesh], "shift": [int(s) * 0.5 for s in offset]}


def _input_kpoints(text: str) -> dict | None:
    """The K_POINTS card of a pw.x input as given (mesh and offset, gamma, or the list)."""
    m = _KPOINTS_CARD.search(text)
    if m is None:
        return None
    kind = (m.group(1) or "tpiba").lower()
    rest = text[m.end() :].splitlines()[1:]
    if kind == "automatic":
        numbers = [int(v) for v in rest[0].split()[:6]]
        return mesh_record(numbers[:3], numbers[3:6])
    if kind == "gamma":
        return {"gamma": True}
    import hashlib

    count = int(rest[0].split()[0])
    listed = " ".join(" ".join(line.split()[:4]) for line in rest[1 : 1 + count])
    return {"list": kind, "list_sha256": hashlib.sha256(listed.encode()).hexdigest()[:12]}


def _header_cell(header: str) -> np.ndarray | None:
    """The cell (Å) the output's header prints (celldm(1) times the crystal axes)."""
    alat, axes = _CELLDM1.search(header), _AXIS.findall(header)[:3]
    if alat is None or len(axes) < 3:
        return None
    return np.array(axes, dtype=float) * float(alat.group(1)) * _BOHR_A


def _checked(atoms: Atoms, header: str, where: str, *, initial: bool) -> str | None:
    """Why ``atoms`` (read from ``where``) is not the structure the output's header describes:
    the atom count, and for the starting structure the cell."""
    if m := _NAT.search(header):
        if len(atoms) != int(m.group(1)):
            return f"{where} holds {len(atoms)} atoms, the output {m.group(1)}"
    if len(atoms) == 0:
        return f"{where} holds no atoms"
    cell = _header_cell(header)
    if initial and cell is not None:
        diff = np.abs(np.asarray(atoms.cell) - cell).max()
        if diff > CELL_TOLERANCE_A:
            return f"{where}'s cell differs from the one the output prints by {diff:.2e} Å"
    return None


def _read_input(path: Path, header: str, found: PwRunFiles) -> None:
    import ase.io

    try:
        text = path.read_text(errors="replace")
        atoms = ase.io.read(path, format="espresso-in")
        kpoints = _input_kpoints(text)
    except Exception as err:  # ASE raises many kinds on malformed input files
        found.notes.append(f"{path.name} is not a readable pw.x input ({type(err).__name__})")
        return
    if why := _checked(atoms, header, path.name, initial=True):
        found.notes.append(why)
        return
    found.initial = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions,
                          cell=atoms.cell, pbc=True)  # fmt: skip
    found.sources["initial"] = f"{path.name} (pw.x input beside the output)"
    found.kpoints = kpoints


def _read_xml(path: Path, header: str, found: PwRunFiles) -> None:
    try:
        root = ET.parse(path).getroot()
        initial = root.find("input/atomic_structure")
        final = root.find("output/atomic_structure")
        structures = [None if n is None else _xml_structure(n) for n in (initial, final)]
        kpoints = _xml_kpoints(root)
    except Exception as err:  # malformed or truncated XML
        found.notes.append(f"{path.name} is not a readable pw.x XML file ({type(err).__name__})")
        return
    for key, atoms in zip(("initial", "final"), structures, strict=True):
        if atoms is None or getattr(found, key) is not None:
            continue
        if why := _checked(atoms, header, path.name, initial=key == "initial"):
            found.notes.append(why)
            continue
        setattr(found, key, atoms)
        found.sources[key] = f"{path.name} ({'input' if key == 'initial' else 'output'} section)"
    found.kpoints = found.kpoints or kpoints


def run_files(output: str | Path, text: str, header: str) -> PwRunFiles:
    """Structures and k-points from the input / XML files ``output``'s run left beside it.

    Parameters
    ----------
    output
        The pw.x output file.
    text
        Its text (names the input file and the save directory).
    header
        Its header (atom count) against which each file is checked.
    """
    output = Path(output)
    named = [Path(m.group(1)).name] if (m := _INPUT_NAME.search(text)) else []
    found = PwRunFiles(looked_for=[*named, "pw.in", f"{output.stem}.in", XML_NAME])
    for path in input_candidates(output, text)[:1]:
        _read_input(path, header, found)
    for path in xml_candidates(output, text):
        _read_xml(path, header, found)
    return found
