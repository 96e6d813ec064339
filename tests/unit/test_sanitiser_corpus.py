"""A corpus of real files for the sanitiser (roles/sanitiser/files/municloud-sanitise), built from
nothing by the tests that need it: the unit tests (test_sanitiser.py), the acceptance test on the
lab (tests/acceptance/test_sanitiser.py) and the benchmark (benchmarks/sanitiser.py) load
:func:`build` from this file. Each sample is made by the library that owns its format (pikepdf,
Pillow, zipfile) or, for the OLE container of a VBA project, by the small writer below (MS-CFB);
the tests here check the corpus against independent readers (libmagic, olefile, oletools,
poppler), so a sample that is not what it claims fails here first.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest

# Japanese and ASCII text in every text sample, so that a wrong decoding shows.
TEXT = "無害化のテスト: 鳥取県 とっとり しゃんしゃん祭 ＡＢＣ 123\nsecond line, 二行目\n"


@dataclasses.dataclass(frozen=True)
class Sample:
    name: str  # the name it is uploaded as
    data: bytes
    decision: str  # passed | refused
    reason: str = ""  # the audit log's reason, for a refused one
    kind: str = ""  # pdf | png | jpeg | text: how a passed one is compared


# --- PDF ------------------------------------------------------------------------------------------


def pdf_with_text(lines: list[str], pages: int = 1) -> bytes:
    """A PDF whose pages show ``lines`` in Helvetica, made with pikepdf."""
    import pikepdf

    pdf = pikepdf.new()
    font = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font,
                                                Subtype=pikepdf.Name.Type1,
                                                BaseFont=pikepdf.Name.Helvetica))
    for page_no in range(pages):
        ops = ["BT", "/F1 14 Tf", "72 740 Td", "16 TL"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped} p{page_no + 1}) Tj T*")
        ops.append("ET")
        content = pdf.make_stream("\n".join(ops).encode("latin-1"))
        page = pikepdf.Dictionary(Type=pikepdf.Name.Page, MediaBox=[0, 0, 595, 842],
                                  Contents=content,
                                  Resources=pikepdf.Dictionary(
                                      Font=pikepdf.Dictionary(F1=font)))
        pdf.pages.append(pikepdf.Page(page))
    pdf.docinfo["/Title"] = "municloud sanitiser corpus"
    pdf.docinfo["/Author"] = "someone at the sender"
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def pdf_javascript() -> bytes:
    """A PDF that runs JavaScript when opened (/OpenAction)."""
    import pikepdf

    pdf = pikepdf.open(io.BytesIO(pdf_with_text(["open me"])))
    pdf.Root.OpenAction = pikepdf.Dictionary(S=pikepdf.Name.JavaScript,
                                             JS=pikepdf.String("app.alert('municloud');"))
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def pdf_encrypted() -> bytes:
    import pikepdf

    pdf = pikepdf.open(io.BytesIO(pdf_with_text(["secret"])))
    out = io.BytesIO()
    pdf.save(out, encryption=pikepdf.Encryption(user="user-pw", owner="owner-pw", R=6))
    return out.getvalue()


def pdf_embedded_file() -> bytes:
    import pikepdf

    pdf = pikepdf.open(io.BytesIO(pdf_with_text(["with an attachment"])))
    spec = pikepdf.AttachedFileSpec(pdf, b"MZ not really an exe", filename="payload.exe")
    pdf.attachments["payload.exe"] = spec
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


# --- images -------------------------------------------------------------------------------------


def png(size: tuple[int, int] = (64, 48), text_chunk: bool = True) -> bytes:
    """An RGB gradient PNG, with a tEXt chunk (metadata the rebuild must drop)."""
    from PIL import Image, PngImagePlugin

    image = Image.new("RGB", size)
    image.putdata([(x * 4 % 256, y * 5 % 256, (x + y) % 256)
                   for y in range(size[1]) for x in range(size[0])])
    info = PngImagePlugin.PngInfo()
    if text_chunk:
        info.add_text("Comment", "municloud-secret-metadata")
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info)
    return out.getvalue()


def jpeg(size: tuple[int, int] = (64, 48)) -> bytes:
    """A JPEG of smooth colours with an EXIF block (metadata the rebuild must drop)."""
    from PIL import Image

    image = Image.new("RGB", size)
    image.putdata([(x * 3 % 256, 128, y * 4 % 256) for y in range(size[1]) for x in range(size[0])])
    exif = Image.Exif()
    exif[0x010E] = "municloud-secret-metadata"  # ImageDescription
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95, exif=exif.tobytes())
    return out.getvalue()


def png_bomb(side: int = 3000) -> bytes:
    """A small PNG of many pixels (a decompression bomb for a limit below side*side)."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (side, side)).save(out, "PNG", optimize=True)
    return out.getvalue()


# --- archives and Office documents ----------------------------------------------------------------


def zip_bomb(size: int = 200 * 1024 * 1024) -> bytes:
    """A small ZIP of one big file of zeros."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive, \
            archive.open("zeros.bin", "w", force_zip64=True) as member:
        chunk = bytes(1024 * 1024)
        for _ in range(size // len(chunk)):
            member.write(chunk)
    return out.getvalue()


def zip_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


FREE, END, FAT_SECTOR, NONE = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF


def ole_file(tree: dict[str, object]) -> bytes:
    """An OLE2 compound file (MS-CFB, version 3, 512-byte sectors) of ``tree``: a name maps to
    bytes (a stream) or to a dict (a storage). Streams are padded to 4096 bytes, so that all live
    in regular sectors (no mini stream)."""
    entries: list[dict[str, object]] = []  # name, type, children, data

    def add(name: str, node: object) -> int:
        index = len(entries)
        entry: dict[str, object] = {"name": name, "left": NONE, "right": NONE, "child": NONE}
        entries.append(entry)
        if isinstance(node, dict):
            entry["type"] = 1
            children = [add(n, c) for n, c in sorted(node.items(),
                                                    key=lambda kv: (len(kv[0]), kv[0].upper()))]
            for a, b in itertools.pairwise(children):
                entries[a]["right"] = b  # a sorted chain is a valid (if unbalanced) tree
            entry["child"] = children[0] if children else NONE
        else:
            assert isinstance(node, bytes)
            entry["type"] = 2
            entry["data"] = node.ljust(4096, b"\x00")
            entry["size"] = len(node.ljust(4096, b"\x00"))
        return index

    root = add("Root Entry", tree)
    entries[root]["type"] = 5
    streams = [e for e in entries if e["type"] == 2]
    dir_sectors = (len(entries) * 128 + 511) // 512
    data_sectors = sum(len(e["data"]) // 512 for e in streams)  # type: ignore[arg-type]
    fat_sectors = 1
    while (fat_sectors + dir_sectors + data_sectors) > fat_sectors * 128:
        fat_sectors += 1
    fat = [FAT_SECTOR] * fat_sectors
    first_dir = len(fat)
    fat += [*range(first_dir + 1, first_dir + dir_sectors), END]
    body = b""
    for e in streams:
        start = len(fat)
        count = len(e["data"]) // 512  # type: ignore[arg-type]
        fat += [*range(start + 1, start + count), END]
        e["start"] = start
        body += e["data"]  # type: ignore[operator]
    fat += [FREE] * (fat_sectors * 128 - len(fat))
    directory = b""
    for e in entries:
        name = str(e["name"]).encode("utf-16-le") + b"\x00\x00"
        directory += struct.pack(
            "<64sHBBIII16sIQQIQ", name, len(name), int(e["type"]), 1,  # type: ignore[call-overload]
            e["left"], e["right"], e["child"], b"\x00" * 16, 0, 0, 0,
            int(e.get("start", END if e["type"] == 5 else 0)),  # type: ignore[call-overload]
            int(e.get("size", 0)))  # type: ignore[call-overload]
    directory = directory.ljust(dir_sectors * 512, b"\x00")
    difat = list(range(fat_sectors)) + [FREE] * (109 - fat_sectors)
    header = struct.pack("<8s16sHHHHH6sIIIIIIIII", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
                         b"\x00" * 16, 0x3E, 3, 0xFFFE, 9, 6, b"\x00" * 6, 0, fat_sectors,
                         first_dir, 0, 4096, END, 0, END, 0)
    header += struct.pack("<109I", *difat)
    fat_bytes = struct.pack(f"<{len(fat)}I", *fat)
    return header + fat_bytes + directory + body


def vba_project_bin() -> bytes:
    """vbaProject.bin as Word writes it (MS-OVBA 2.2): the PROJECT stream, and a VBA storage
    with the dir and _VBA_PROJECT streams and a module."""
    return ole_file({
        "PROJECT": b'ID="{00000000-0000-0000-0000-000000000000}"\r\nDocument=ThisDocument/'
                   b'&H00000000\r\nName="Project"\r\n',
        "PROJECTwm": b"ThisDocument\x00T\x00h\x00i\x00s\x00\x00\x00\x00\x00",
        "VBA": {
            "dir": b"\x01\x00\x00",  # a compressed container's signature byte, then nothing
            "_VBA_PROJECT": b"\xcc\x61\xff\xff\x00\x00\x00",
            "ThisDocument": b"Attribute VB_Name = \"ThisDocument\"\r\nSub AutoOpen()\r\n"
                            b"Shell \"calc.exe\"\r\nEnd Sub\r\n",
        },
    })


CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships'
    '+xml"/><Default Extension="xml" ContentType="application/xml"/>'
    '<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/>'
    '<Override PartName="/word/document.xml" ContentType="application/vnd.ms-word.document.'
    'macroEnabled.main+xml"/></Types>'
)


def docm() -> bytes:
    """A Word document with a macro (.docm): OOXML with word/vbaProject.bin."""
    return zip_of({
        "[Content_Types].xml": CONTENT_TYPES.encode(),
        "_rels/.rels": b'<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats'
                       b'.org/package/2006/relationships"><Relationship Id="rId1" Type="http://'
                       b'schemas.openxmlformats.org/officeDocument/2006/relationships/'
                       b'officeDocument" Target="word/document.xml"/></Relationships>',
        "word/document.xml": b'<?xml version="1.0"?><w:document xmlns:w="http://schemas.'
                             b'openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r>'
                             b"<w:t>macro</w:t></w:r></w:p></w:body></w:document>",
        "word/_rels/document.xml.rels": b'<?xml version="1.0"?><Relationships xmlns="http://'
                                        b'schemas.openxmlformats.org/package/2006/relationships">'
                                        b'<Relationship Id="rId1" Type="http://schemas.microsoft.'
                                        b'com/office/2006/relationships/vbaProject" '
                                        b'Target="vbaProject.bin"/></Relationships>',
        "word/vbaProject.bin": vba_project_bin(),
    })


def ole_doc_with_macros() -> bytes:
    """A Word 97-2003 document (.doc) with a macro: the VBA project under Macros/."""
    project = {"PROJECT": b'Name="Project"\r\n', "VBA": {
        "dir": b"\x01\x00\x00", "_VBA_PROJECT": b"\xcc\x61\xff\xff\x00\x00\x00",
        "ThisDocument": b"Sub AutoOpen()\r\nEnd Sub\r\n"}}
    return ole_file({"WordDocument": b"\xec\xa5\xc1\x00" + b"\x00" * 600,
                     "1Table": b"\x00" * 600, "Macros": project})


# --- the corpus -----------------------------------------------------------------------------------


def build(directory: Path | None = None, big_bytes: int = 0) -> list[Sample]:
    """Every sample; written into ``directory`` as well when given. ``big_bytes``: add a big text
    file (for the lab's kill test and the benchmark)."""
    clean_pdf = pdf_with_text(["Municipal notice 2026", "sanitised transfer test"], pages=2)
    clean_png = png()
    samples = [
        Sample("notice.pdf", clean_pdf, "passed", kind="pdf"),
        Sample("photo.png", clean_png, "passed", kind="png"),
        Sample("camera.JPG", jpeg(), "passed", kind="jpeg"),
        Sample("memo-utf8.txt", TEXT.encode("utf-8"), "passed", kind="text"),
        Sample("memo-sjis.txt", TEXT.encode("cp932"), "passed", kind="text"),
        Sample("memo-eucjp.csv", TEXT.encode("euc_jp"), "passed", kind="text"),
        Sample("invoice.docm", docm(), "refused", "macro"),
        Sample("old-invoice.doc", ole_doc_with_macros(), "refused", "macro"),
        Sample("report.pdf", Path("/bin/true").read_bytes(), "refused", "executable"),
        Sample("open-me.pdf", pdf_javascript(), "refused", "javascript"),
        Sample("attachment.pdf", pdf_embedded_file(), "refused", "embedded file"),
        Sample("photos.zip.jpg", zip_bomb(), "refused", "archive"),
        Sample("locked.pdf", pdf_encrypted(), "refused", "encrypted"),
        Sample("notice-and-zip.pdf", clean_pdf + zip_of({"a.txt": b"hidden"}), "refused",
               "polyglot"),
        Sample("photo-and-more.png", clean_png + b"PK\x03\x04 hidden after IEND", "refused",
               "polyglot"),
    ]
    if big_bytes:
        line = TEXT.encode("utf-8")
        samples.append(Sample("big.txt", line * (big_bytes // len(line)), "passed", kind="text"))
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        for sample in samples:
            (directory / sample.name).write_bytes(sample.data)
    return samples


# --- the corpus is what it claims, by readers other than the sanitiser ----------------------------


def test_the_office_samples_are_vba_projects_to_olefile_and_oletools() -> None:
    import olefile

    ole = olefile.OleFileIO(io.BytesIO(vba_project_bin()))
    assert ole.exists("VBA/dir") and ole.exists("VBA/_VBA_PROJECT") and ole.exists("PROJECT")
    olevba = pytest.importorskip("oletools.olevba")
    for name, data in (("invoice.docm", docm()), ("old-invoice.doc", ole_doc_with_macros())):
        parser = olevba.VBA_Parser(name, data=data)
        assert parser.detect_vba_macros(), f"oletools finds no VBA macro in {name}"
        parser.close()


def test_the_pdf_samples_read_with_poppler(tmp_path: Path) -> None:
    if shutil.which("pdftotext") is None:
        pytest.skip("poppler-utils is not installed (scripts/install.sh installs it)")
    path = tmp_path / "notice.pdf"
    path.write_bytes(pdf_with_text(["Municipal notice 2026"]))
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "Municipal notice 2026 p1" in text
    locked = tmp_path / "locked.pdf"
    locked.write_bytes(pdf_encrypted())
    refused = subprocess.run(["pdftotext", str(locked), "-"], capture_output=True, text=True)
    assert refused.returncode != 0 and "password" in refused.stderr.lower()


def test_the_zip_bomb_is_small_and_big() -> None:
    bomb = zip_bomb()
    with zipfile.ZipFile(io.BytesIO(bomb)) as archive:
        assert archive.infolist()[0].file_size == 200 * 1024 * 1024
    assert len(bomb) < 1024 * 1024
