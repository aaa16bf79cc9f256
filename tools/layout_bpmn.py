"""Write BPMN diagram interchange (DI) into hand-authored .bpmn files so bpmn-js can draw them.

Why: the lifecycle diagrams are written as XML by hand and carry no <bpmndi:BPMNDiagram>, so the case
viewer and the modeler (bpmn-js) have nothing to draw. This derives a plain left-to-right layout from the
process itself: the pool, one horizontal band per lane, columns by longest-path layering of the sequence
flows (back edges, found by a DFS from the start events, are left out and routed along corridors above or
below the lanes), rows inside each band, and orthogonal edges between shape borders that avoid the shapes.

Only the DI block before </definitions> is replaced; every other byte of the file is kept, and the result
depends on the process alone, so a second run leaves the files identical.

Usage: python tools/layout_bpmn.py workflows/dispute_lifecycle/*.bpmn
"""
from __future__ import annotations

import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from lxml import etree

NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL"}
DI_NAMESPACES = {"bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
                 "dc": "http://www.omg.org/spec/DD/20100524/DC", "di": "http://www.omg.org/spec/DD/20100524/DI"}
SIZES = {"event": (36, 36), "gateway": (50, 50), "activity": (100, 80)}
SLOT_W, GAP_X = 100, 60          # column slot; the gap between slots is a channel for vertical edge segments
POOL_X, POOL_Y, HEADER = 160, 80, 30
ROW_H, ROW_H_TIMERS = 120, 160   # bands with boundary events need room below the hosts for the timers' flows
CORRIDOR = 16                    # spacing of the back-edge corridors above/below the lanes
DI_BLOCK = re.compile(r"[ \t]*<bpmndi:BPMNDiagram\b.*?</bpmndi:BPMNDiagram>[ \t]*\n?", re.S)
END_DEFS = re.compile(r"</(?:\w+:)?definitions>\s*$")


@dataclass
class Box:
    x: int
    y: int
    w: int
    h: int
    right = property(lambda self: self.x + self.w)
    bottom = property(lambda self: self.y + self.h)
    cx = property(lambda self: self.x + self.w // 2)
    cy = property(lambda self: self.y + self.h // 2)

    def hits(self, lx, ly, hx, hy, pad=2) -> bool:
        """Whether the rectangle (or segment) lx..hx × ly..hy touches this box."""
        return lx < self.right + pad and hx > self.x - pad and ly < self.bottom + pad and hy > self.y - pad


def kind(el) -> str | None:
    tag = etree.QName(el).localname if isinstance(el.tag, str) else ""
    for suffix, name in (("Gateway", "gateway"), ("Event", "event"), ("Task", "activity")):
        if tag.endswith(suffix):
            return name
    return "activity" if tag in ("task", "callActivity", "subProcess", "transaction") else None


def label_box(text: str, x: int, align: int, y: int, lines: int = 1) -> Box:
    """A label for text in about `lines` lines (bpmn-js wraps at the box width; a CJK glyph at its 11 px font
    is ~11 px), its left edge at x (align 0), its right edge at x (align 2) or centred on x (align 1)."""
    step = -(-len(text) // lines)
    chunks = [text[i:i + step] for i in range(0, len(text), step)]
    w = max(sum(12 if ord(ch) > 0x2E7F else 7 for ch in chunk) for chunk in chunks) + 4
    return Box(x - w * align // 2, y, w, 15 * len(chunks))


def simplify(points):
    """Drop repeated points and the middle of straight runs."""
    out = []
    for p in points:
        if len(out) >= 2 and (out[-2][0] == out[-1][0] == p[0] or out[-2][1] == out[-1][1] == p[1]):
            out[-1] = p
        elif not out or p != out[-1]:
            out.append(p)
    return out


class ProcessLayout:
    """Shapes, edges and labels of one process inside its pool, whose top edge is at pool_y."""

    def __init__(self, process, pool_y: int):
        self.nodes, self.host, self.names = {}, {}, {}  # host: boundary event -> the activity it is attached to
        for el in filter(kind, process):
            self.names[el.get("id")] = el.get("name")
            if etree.QName(el).localname == "boundaryEvent":
                self.host[el.get("id")] = el.get("attachedToRef")
            else:
                self.nodes[el.get("id")] = el
        self.anchor = lambda n: self.host.get(n, n)  # a boundary event's flows leave from its host's column
        self.flows = [(f.get("id"), f.get("sourceRef"), f.get("targetRef"), f.get("name"))
                      for f in process.iterfind("bpmn:sequenceFlow", NS)
                      if self.anchor(f.get("sourceRef")) in self.nodes and f.get("targetRef") in self.nodes]
        self.boundaries = defaultdict(list)
        for b, h in self.host.items():
            self.boundaries[h].append(b)
        self.assign_lanes(process)
        # a timer's dead end (e.g. "reminded") is drawn right below its timer instead of taking a column
        ins, outs = Counter(t for _, _, t, _ in self.flows), {s for _, s, _, _ in self.flows}
        self.tucked = {t: s for _, s, t, _ in self.flows if s in self.host and ins[t] == 1 and t not in outs
                       and self.lane[t] == self.lane[self.host[s]]}
        self.assign_columns()
        self.assign_rows()
        self.place(pool_y)
        self.route_all()
        self.place_labels()

    def assign_lanes(self, process):
        self.lanes = [(lane.get("id"), [r.text.strip() for r in lane.iterfind("bpmn:flowNodeRef", NS)])
                      for lane in process.iterfind("bpmn:laneSet/bpmn:lane", NS)] or [(None, [])]
        self.lane = {}
        for i, (_, refs) in enumerate(self.lanes):
            for ref in refs:
                self.lane.setdefault(ref, i)
        for n in self.nodes:  # an unlisted node joins the lane most of its neighbours are in
            if n not in self.lane:
                near = Counter(self.lane[m] for _, s, t, _ in self.flows
                               for a, m in ((self.anchor(s), t), (t, self.anchor(s))) if a == n and m in self.lane)
                self.lane[n] = near.most_common(1)[0][0] if near else 0

    def assign_columns(self):
        """Back edges close a cycle on the DFS stack; the rest are layered by longest path, in Kahn's order."""
        succ, state, self.back = defaultdict(list), {}, set()
        for fid, s, t, _ in self.flows:
            succ[self.anchor(s)].append((fid, t))

        def visit(n):
            state[n] = "open"
            for fid, t in succ[n]:
                if state.get(t) == "open":
                    self.back.add(fid)
                elif t not in state:
                    visit(t)
            state[n] = "done"

        for n in sorted(self.nodes, key=lambda n: etree.QName(self.nodes[n]).localname != "startEvent"):
            if n not in state:
                visit(n)
        self.fwd = [f for f in self.flows if f[0] not in self.back]
        indeg, self.col = Counter(t for _, _, t, _ in self.fwd), dict.fromkeys(self.nodes, 0)
        ready = [n for n in self.nodes if indeg[n] == 0]
        while ready:
            n = ready.pop(0)
            for fid, t in succ[n]:
                if fid not in self.back:
                    self.col[t] = max(self.col[t], self.col[n] + 1)
                    indeg[t] -= 1
                    if indeg[t] == 0:
                        ready.append(t)
        for t, b in self.tucked.items():
            self.col[t] = self.col[self.host[b]]

    def assign_rows(self):
        """Rows inside each band, column by column: follow the predecessor's row, keep the row under a host of
        boundary events for its timers, and skip a row whose left neighbour is an unrelated node with an outgoing
        flow (that flow would seem to run into this node)."""
        preds, has_out, cells, self.row = defaultdict(list), {self.anchor(s) for _, s, _, _ in self.flows}, {}, {}
        for i, (_, s, t, _) in enumerate(self.fwd):
            preds[t].append((i, s))

        def pref(n):
            same = [(i, s) for i, s in preds[n] if self.lane[self.anchor(s)] == self.lane[n]]
            if any(s not in self.host for _, s in same):  # ties go to the flow written first: the usual path
                return min((self.row[s], i) for i, s in same if s not in self.host)
            timers = [self.row[self.host[s]] + 1 for _, s in same]  # below the (last) host of its timers
            return max(timers, default=0), max((i for i, _ in preds[n]), default=-1)

        def clean(n, c, r):
            lane, left = self.lane[n], cells.get((self.lane[n], c - 1, r))
            related = {s for _, s in preds[n]} | {("shadow", self.host[s]) for _, s in preds[n] if s in self.host}
            return ((lane, c, r) not in cells and not (self.boundaries.get(n) and (lane, c, r + 1) in cells)
                    and (left is None or left in related or left not in has_out))

        for c in sorted(set(self.col.values())):
            for n in sorted((n for n in self.nodes if self.col[n] == c and n not in self.tucked), key=pref):
                want = pref(n)[0]
                nearest_first = sorted(range(len(self.nodes) + 2), key=lambda r: (abs(r - want), r < want))
                self.row[n] = next(r for r in nearest_first if clean(n, c, r))
                cells[(self.lane[n], c, self.row[n])] = n
                if self.boundaries.get(n):
                    cells[(self.lane[n], c, self.row[n] + 1)] = ("shadow", n)
        for t, b in self.tucked.items():
            self.row[t] = self.row[self.host[b]] + 1

    def place(self, pool_y):
        lanes, last = range(len(self.lanes)), len(self.lanes) - 1
        nrows = [1 + max([self.row[n] for n in self.nodes if self.lane[n] == i], default=0) for i in lanes]
        row_h = [ROW_H_TIMERS if any(self.lane[h] == i for h in self.boundaries) else ROW_H for i in lanes]
        # a back edge runs above the lanes when its ends sit in the upper half of them
        self.back_side = {f: "above" if self.lane[self.anchor(s)] + self.lane[t] < last else "below"
                          for f, s, t, _ in self.flows if f in self.back}
        n_above = sum(side == "above" for side in self.back_side.values())
        n_below = len(self.back_side) - n_above
        x0 = POOL_X + 2 * HEADER + 30
        self.slot_left = lambda n: x0 + self.col[self.anchor(n)] * (SLOT_W + GAP_X)
        width = 2 * HEADER + 60 + (max(self.col.values(), default=0) + 1) * (SLOT_W + GAP_X) - GAP_X
        self.boxes, self.lane_boxes, centre, y = {}, [], {}, pool_y
        for i in lanes:
            top = CORRIDOR * n_above + 8 if i == 0 and n_above else 0
            bottom = CORRIDOR * n_below + 8 if i == last and n_below else 0
            self.rows_top = y + top if i == 0 else self.rows_top
            for n in self.nodes:
                if self.lane[n] == i:
                    centre[n] = (self.slot_left(n) + SLOT_W // 2, y + top + self.row[n] * row_h[i] + row_h[i] // 2)
            height = top + nrows[i] * row_h[i] + bottom
            self.lane_boxes.append((self.lanes[i][0], Box(POOL_X + HEADER, y, width - HEADER, height)))
            y += height
        self.rows_bottom = y - (CORRIDOR * n_below + 8 if n_below else 0)
        self.pool = Box(POOL_X, pool_y, width, y - pool_y)
        for n in sorted(self.nodes, key=lambda n: n in self.tucked):  # tucked ones go under their timer, placed first
            w, h = SIZES[kind(self.nodes[n])]
            cx = self.boxes[self.tucked[n]].cx if n in self.tucked else centre[n][0]
            self.boxes[n] = Box(cx - w // 2, centre[n][1] - h // 2, w, h)
            for i, b in enumerate(self.boundaries.get(n, [])):  # spread along the host's bottom edge
                bs, host = self.boundaries[n], self.boxes[n]
                self.boxes[b] = Box(host.x + host.w * (2 * i + 1) // (2 * len(bs)) - 18, host.bottom - 18, 36, 36)

    def route_all(self):
        self.edges, self.used, self.segments, side = {}, defaultdict(set), [], self.back_side
        # the shortest back edge takes the corridor nearest to the lanes, so back edges do not cross each other
        span = {f: abs(self.boxes[s].cx - self.boxes[t].cx) for f, s, t, _ in self.flows if f in side}
        rank = {d: sorted((f for f in side if side[f] == d), key=lambda f: (span[f], f)) for d in ("above", "below")}
        for fid, s, t, _ in sorted(self.flows, key=lambda f: f[0] in side):  # back edges last: they avoid the ports
            cands = (self.back_candidates(s, t, side[fid], rank[side[fid]].index(fid)) if fid in side
                     else self.forward_candidates(s, t))
            self.edges[fid] = self.choose(cands, s, t)
        self.edges = {fid: self.edges[fid] for fid, *_ in self.flows}

    def forward_candidates(self, s, t):
        S, T = self.boxes[s], self.boxes[t]
        into = (t, "L", "in")
        if s in self.host:  # leave a boundary event downwards, then turn towards the target
            bs = self.boundaries[self.host[s]]
            gy, port = self.boxes[self.host[s]].bottom + 26 + 8 * (len(bs) - 1 - bs.index(s)), (s, "B", "out")
            if T.cx == S.cx:
                yield [(S.cx, S.bottom), (S.cx, T.y)], [port, (t, "T", "in")]
            if T.cy > S.bottom and T.x > S.cx:
                yield [(S.cx, S.bottom), (S.cx, T.cy), (T.x, T.cy)], [port, into]
            for xe in (self.slot_left(t) - 12, self.slot_left(t) - 20, self.slot_left(s) + SLOT_W + 12):
                yield [(S.cx, S.bottom), (S.cx, gy), (xe, gy), (xe, T.cy), (T.x, T.cy)], [port, into]
            return
        out, down = (s, "R", "out"), T.cy > S.cy
        if S.cy == T.cy:
            yield [(S.right, S.cy), (T.x, T.cy)], [out, into]
        elif kind(self.nodes[s]) == "gateway":  # the usual fan-out from the top or bottom vertex
            yield [(S.cx, S.bottom if down else S.y), (S.cx, T.cy), (T.x, T.cy)], [(s, "TB"[down], "out"), into]
        if S.cy != T.cy and kind(self.nodes[t]) == "gateway":  # the usual merge into the top or bottom vertex
            yield [(S.right, S.cy), (T.cx, S.cy), (T.cx, T.y if down else T.bottom)], [out, (t, "BT"[down], "in")]
        for mid in (self.slot_left(t) - GAP_X // 2, self.slot_left(s) + SLOT_W + GAP_X // 2):
            for mx in (mid, mid - 15, mid + 15):
                yield [(S.right, S.cy), (mx, S.cy), (mx, T.cy), (T.x, T.cy)], [out, into]

    def back_candidates(self, s, t, side, k):
        """Out of the source, along the k-th corridor above or below all lanes, into the target."""
        S, T, above = self.boxes[s], self.boxes[t], side == "above"
        y = self.rows_top - 4 - CORRIDOR * k if above else self.rows_bottom + 4 + CORRIDOR * k
        xs, xt, near = self.slot_left(s) + SLOT_W + 8 + 5 * k, self.slot_left(t) - 8 - 5 * k, "T" if above else "B"
        exits = [([(S.cx, S.y if above else S.bottom)], S.cx, (s, near, "out")),
                 ([(S.right, S.cy), (xs, S.cy)], xs, (s, "R", "out"))]
        if s in self.host:
            exits = [([(S.cx, S.bottom), (S.cx, S.bottom + 10), (xs, S.bottom + 10)], xs, (s, "B", "out"))]
        entries = [([(T.cx, T.y if above else T.bottom)], T.cx, (t, near, "in")),
                   ([(xt, T.cy), (T.x, T.cy)], xt, (t, "L", "in"))]
        for ex_points, ex_x, ex_port in exits:
            for en_points, en_x, en_port in entries:
                yield ex_points + [(ex_x, y), (en_x, y)] + en_points, [ex_port, en_port]

    def choose(self, candidates, s, t):
        """The first candidate with the lowest cost: crossing a shape is worst, then sharing a port against the
        flow direction, then running along an unrelated flow, then crossing one."""
        skip, best = {s, t, self.host.get(s)}, None
        for points, ports in candidates:
            points = simplify(points)
            cost = sum(4 for n, side, d in ports if self.used[(n, side)] - {d})
            for (x1, y1), (x2, y2) in pairwise(points):
                lx, hx, ly, hy = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
                cost += 8 * sum(b.hits(lx, ly, hx, hy) for n, b in self.boxes.items() if n not in skip)
                for ox, oy, oX, oY, os, ot in self.segments:
                    if os == s or ot == t:  # flows from one source or into one target may share their lines
                        continue
                    if lx == hx:  # a vertical segment: along another vertical one, or across a horizontal one
                        cost += 2 * (ox == oX == lx and ly < oY and oy < hy) + (ox < lx < oX and ly < oy < hy)
                    else:
                        cost += 2 * (oy == oY == ly and lx < oX and ox < hx) + (oy < ly < oY and lx < ox < hx)
            if best is None or cost < best[0]:
                best = (cost, points, ports)
        for n, side, d in best[2]:
            self.used[(n, side)].add(d)
        self.segments += [(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2), s, t)
                          for (x1, y1), (x2, y2) in pairwise(best[1])]
        return best[1]

    def place_labels(self):
        """Each label goes to the listed spot that touches the fewest flow segments, shapes and earlier labels."""
        self.labels = {}
        clutter = lambda box: (sum(box.hits(*seg[:4], 0) for seg in self.segments)  # noqa: E731
                               + sum(box.hits(o.x, o.y, o.right, o.bottom, 0)
                                     for o in [*self.boxes.values(), *self.labels.values()]))
        length = lambda seg: abs(seg[1][0] - seg[0][0]) + abs(seg[1][1] - seg[0][1])  # noqa: E731
        for fid, _, _, name in self.flows:  # beside its last, longest or first segment
            if name:
                segs, spots = list(pairwise(self.edges[fid])), []
                for (x1, y1), (x2, y2) in (segs[-1], max(segs, key=length), segs[0]):
                    for lines in (1, 2, 3):
                        h = label_box(name, 0, 0, 0, lines).h
                        if y1 == y2:  # above or below a horizontal segment, beside a vertical one
                            spots += [label_box(name, (x1 + x2) // 2, 1, y, lines) for y in (y1 - 3 - h, y1 + 3)]
                        else:
                            spots += [label_box(name, x1 + dx, align, (y1 + y2) // 2 - h // 2, lines)
                                      for dx, align in ((5, 0), (-5, 2))]
                self.labels[fid] = min(spots, key=clutter)
        for n, box in self.boxes.items():
            text = self.names[n]
            if not text or (n in self.nodes and kind(self.nodes[n]) == "activity"):
                continue  # activities show their name inside
            h = label_box(text, 0, 0, 0).h
            if n in self.host:  # beside the timer's own line, below the timers' flows or just under the host
                host, bs = self.boxes[self.host[n]], self.boundaries[self.host[n]]
                low, under = host.bottom + 26 + 8 * len(bs), host.bottom + 2
                sides = [(box.cx + 6, 0, low), (box.cx + 22, 0, under), (box.cx - 6, 2, low), (box.cx - 22, 2, under)]
                if 2 * bs.index(n) + 1 <= len(bs):  # the left timers look left first
                    sides = sides[2:] + sides[:2]
                spots = [label_box(text, x, align, y, lines) for x, align, y in sides for lines in (1, 2, 3)]
            elif kind(self.nodes[n]) == "gateway":
                spots = [label_box(text, box.cx + dx, align, y) for y in (box.y - 4 - h, box.bottom + 4)
                         for dx, align in ((-8, 2), (8, 0))]
            else:
                spots = [label_box(text, box.cx, 1, y) for y in (box.bottom + 4, box.y - 4 - h)]
            self.labels[n] = min(spots, key=clutter)


def bounds(box: Box, indent: int) -> str:
    return f'{" " * indent}<dc:Bounds x="{box.x}" y="{box.y}" width="{box.w}" height="{box.h}" />\n'


def label_xml(label: Box | None) -> str:
    return "" if label is None else f"        <bpmndi:BPMNLabel>\n{bounds(label, 10)}        </bpmndi:BPMNLabel>\n"


def diagram_xml(root) -> str:
    """The DI block: one plane on the collaboration, its pools stacked top to bottom."""
    collab = root.find("bpmn:collaboration", NS)
    if collab is None:
        raise SystemExit("no bpmn:collaboration: the layout needs a pool to draw the lanes in")
    processes, cid = {p.get("id"): p for p in root.iterfind("bpmn:process", NS)}, collab.get("id")
    out = [f'  <bpmndi:BPMNDiagram id="BPMNDiagram_{cid}">\n',
           f'    <bpmndi:BPMNPlane id="BPMNPlane_{cid}" bpmnElement="{cid}">\n']

    def shape(element_id, box, extra="", label=None):
        out.extend([f'      <bpmndi:BPMNShape id="{element_id}_di" bpmnElement="{element_id}"{extra}>\n',
                    bounds(box, 8), label_xml(label), "      </bpmndi:BPMNShape>\n"])

    y = POOL_Y
    for participant in collab.iterfind("bpmn:participant", NS):
        lay = ProcessLayout(processes[participant.get("processRef")], y)
        y = lay.pool.bottom + 40
        shape(participant.get("id"), lay.pool, ' isHorizontal="true"')
        for lane_id, box in lay.lane_boxes:
            if lane_id:
                shape(lane_id, box, ' isHorizontal="true"')
        for n, box in lay.boxes.items():
            exclusive = n in lay.nodes and etree.QName(lay.nodes[n]).localname == "exclusiveGateway"
            shape(n, box, ' isMarkerVisible="true"' if exclusive else "", lay.labels.get(n))
        for fid, points in lay.edges.items():
            out.append(f'      <bpmndi:BPMNEdge id="{fid}_di" bpmnElement="{fid}">\n')
            out.extend(f'        <di:waypoint x="{x}" y="{wy}" />\n' for x, wy in points)
            out.extend([label_xml(lay.labels.get(fid)), "      </bpmndi:BPMNEdge>\n"])
    return "".join(out + ["    </bpmndi:BPMNPlane>\n", "  </bpmndi:BPMNDiagram>\n"])


def relayout(path: Path) -> bool:
    """Replace the DI block of one file; return whether the file changed."""
    original = path.read_text("utf-8")
    text = DI_BLOCK.sub("", original)
    root = etree.fromstring(text.encode("utf-8"), etree.XMLParser(resolve_entities=False, no_network=True))
    missing = [p for p, uri in DI_NAMESPACES.items() if root.nsmap.get(p) != uri]
    end = END_DEFS.search(text)
    if missing or end is None:
        raise SystemExit(f"{path}: needs </definitions> and the prefixes {', '.join(DI_NAMESPACES)} declared")
    updated = text[:end.start()] + diagram_xml(root) + text[end.start():]
    if updated != original:
        path.write_text(updated, "utf-8")
    return updated != original


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python tools/layout_bpmn.py FILE.bpmn...")
    for name in sys.argv[1:]:
        print(f"{name}: {'laid out' if relayout(Path(name)) else 'unchanged'}")
