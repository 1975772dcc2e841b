"""A griffe extension for the API pages (``extensions:`` in ``mkdocs.yml``).

The package's docstrings are Google style with two habits that Markdown and
the Google parser do not read, rewritten here before parsing (the package's
files are not changed):

* reStructuredText simple tables (``=====  =====`` borders) become Markdown
  tables; a row whose first column is blank or starts with ``(`` continues
  the row above;
* an argument entry that names several arguments over two lines
  (``include_top, weights, ...,`` then ``classifier_activation, name: ...``)
  is joined onto one line, so the parser keeps it instead of dropping it.
"""

import re

import griffe

BORDER = re.compile(r"^(\s*)(=+)((?: +=+)+)\s*$")
NAMES_LINE = re.compile(r"^(\s+)(\w+(?:, \w+)+),\s*$")


def _columns(border):
    """``[(start, end)]`` of each ``=`` run of a table border."""
    return [match.span() for match in re.finditer(r"=+", border)]


def _cells(line, columns):
    cells = []
    for index, (start, _) in enumerate(columns):
        end = columns[index + 1][0] if index + 1 < len(columns) else len(line)
        cells.append(line[start:end].strip())
    return cells


def _markdown_table(indent, header, rows):
    def line(cells):
        return indent + "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    width = len(rows[0]) if rows else len(header or ())
    head = header or [""] * width
    return [line(head), indent + "|" + "---|" * width] + [line(row) for row in rows]


def rst_tables_to_markdown(text):
    """Rewrites every reStructuredText simple table of ``text`` as a Markdown table."""
    lines, out, index = text.splitlines(), [], 0
    while index < len(lines):
        match = BORDER.match(lines[index])
        if not match:
            out.append(lines[index])
            index += 1
            continue
        indent, columns = match.group(1), _columns(lines[index])
        borders, body = [index], []
        index += 1
        while index < len(lines) and len(borders) < 3:
            if BORDER.match(lines[index]):
                borders.append(index)
                body.append(None)
                index += 1
                if len(borders) == 2 and not (index < len(lines) and lines[index].strip()):
                    break  # a table without a header: top border, rows, bottom border
            else:
                body.append(lines[index])
                index += 1
        parts = [[]]
        for line in body:
            if line is None:
                parts.append([])
            elif line.strip():
                parts[-1].append(line)
        parts = [part for part in parts if part]
        header_lines, row_lines = (parts[0], parts[1]) if len(parts) >= 2 else ([], parts[0])
        header = _cells(header_lines[0], columns) if header_lines else None
        rows = []
        for line in row_lines:
            cells = _cells(line, columns)
            if rows and (not cells[0] or cells[0].startswith("(")):
                rows[-1] = [f"{old} {new}".strip() for old, new in zip(rows[-1], cells)]
            else:
                rows.append(cells)
        if out and out[-1].strip():
            out.append("")
        out.extend(_markdown_table(indent, header, rows))
    return "\n".join(out)


def join_split_names(text):
    """Joins an argument entry whose names continue on the next line."""
    lines, out, index = text.splitlines(), [], 0
    while index < len(lines):
        match = NAMES_LINE.match(lines[index])
        if match and index + 1 < len(lines) and ":" in lines[index + 1]:
            out.append(f"{match.group(1)}{match.group(2)}, {lines[index + 1].strip()}")
            index += 2
        else:
            out.append(lines[index])
            index += 1
    return "\n".join(out)


class CourseDocstrings(griffe.Extension):
    """Applies both rewrites to every docstring the handler loads."""

    def on_instance(self, *, node, obj, agent, **kwargs):
        docstring = obj.docstring
        if docstring is None or not docstring.value:
            return
        value = join_split_names(rst_tables_to_markdown(docstring.value))
        if value != docstring.value:
            docstring.value = value
