"""The lifecycle diagrams carry a drawable layout (BPMN DI), written by tools/layout_bpmn.py.

bpmn-js draws only what has DI: every pool, lane, flow node and boundary event needs a shape and every
sequence flow an edge. The layout must also make sense (nodes in their lane's band, no overlaps, timers on
their activity's border, orthogonal edges from border to border), leave the process parseable by SpiffWorkflow,
and be exactly what the tool produces, so that re-running it after an edit of the XML changes nothing else.
"""
import re
import shutil
import subprocess
import sys
from itertools import combinations, pairwise
from pathlib import Path

import pytest
from lxml import etree
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "workflows" / "dispute_lifecycle"
TOOL = ROOT / "tools" / "layout_bpmn.py"
FILES = ["dispute_lifecycle.bpmn", "village_mediation.bpmn", "town_mediation.bpmn", "county_mediation.bpmn",
         "litigation.bpmn"]
NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL", "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
      "dc": "http://www.omg.org/spec/DD/20100524/DC", "di": "http://www.omg.org/spec/DD/20100524/DI"}
NODE_TAGS = {"callActivity", "subProcess", "task"}


def is_flow_node(el) -> bool:
    if not isinstance(el.tag, str):
        return False
    tag = etree.QName(el).localname
    return tag in NODE_TAGS or tag.endswith(("Task", "Event", "Gateway"))


class Diagram:
    def __init__(self, name):
        self.root = etree.parse(str(BUNDLE / name)).getroot()
        self.collaboration = self.root.find("bpmn:collaboration", NS)
        self.participants = self.collaboration.findall("bpmn:participant", NS)
        self.process = self.root.find("bpmn:process", NS)
        self.lanes = self.process.findall("bpmn:laneSet/bpmn:lane", NS)
        self.nodes = [el for el in self.process if is_flow_node(el)]
        self.flows = self.process.findall("bpmn:sequenceFlow", NS)
        self.plane = self.root.find("bpmndi:BPMNDiagram/bpmndi:BPMNPlane", NS)
        self.shapes, self.edges = {}, {}
        for shape in self.root.iterfind(".//bpmndi:BPMNShape", NS):
            self.shapes.setdefault(shape.get("bpmnElement"), []).append(shape)
        for edge in self.root.iterfind(".//bpmndi:BPMNEdge", NS):
            self.edges.setdefault(edge.get("bpmnElement"), []).append(edge)

    def box(self, element_id):
        """(x1, y1, x2, y2) of the element's shape."""
        b = self.shapes[element_id][0].find("dc:Bounds", NS)
        x, y, w, h = (float(b.get(k)) for k in ("x", "y", "width", "height"))
        return x, y, x + w, y + h

    def waypoints(self, flow_id):
        return [(float(p.get("x")), float(p.get("y"))) for p in self.edges[flow_id][0].iterfind("di:waypoint", NS)]


@pytest.fixture(scope="module", params=FILES)
def diagram(request):
    return Diagram(request.param)


def inside(inner, outer):
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def on_border(point, box):
    (px, py), (x1, y1, x2, y2) = point, box
    return ((px in (x1, x2) and y1 <= py <= y2) or (py in (y1, y2) and x1 <= px <= x2))


def test_every_element_has_one_shape_and_every_flow_one_edge(diagram):
    assert diagram.plane is not None, "no BPMNDiagram"
    assert diagram.plane.get("bpmnElement") == diagram.collaboration.get("id")
    assert len(diagram.participants) == 1 and diagram.lanes
    for el in diagram.participants + diagram.lanes + diagram.nodes:
        assert len(diagram.shapes.get(el.get("id"), [])) == 1, f"{el.get('id')} needs exactly one BPMNShape"
    for el in diagram.participants + diagram.lanes:
        assert diagram.shapes[el.get("id")][0].get("isHorizontal") == "true"
    for el in diagram.nodes:
        if etree.QName(el).localname == "exclusiveGateway":
            assert diagram.shapes[el.get("id")][0].get("isMarkerVisible") == "true"
    for flow in diagram.flows:
        assert len(diagram.edges.get(flow.get("id"), [])) == 1, f"{flow.get('id')} needs exactly one BPMNEdge"
        assert len(diagram.waypoints(flow.get("id"))) >= 2
    known = {el.get("id") for el in diagram.participants + diagram.lanes + diagram.nodes + diagram.flows}
    assert set(diagram.shapes) | set(diagram.edges) <= known, "DI for elements that do not exist"


def test_nodes_sit_in_their_lane_band_inside_the_pool_without_overlapping(diagram):
    pool = diagram.box(diagram.participants[0].get("id"))
    bands = [diagram.box(lane.get("id")) for lane in diagram.lanes]
    for band in bands:
        assert inside(band, pool)
    for upper, lower in pairwise(sorted(bands, key=lambda b: b[1])):
        assert upper[3] <= lower[1], "lane bands overlap"
        assert (upper[0], upper[2]) == (lower[0], lower[2]), "lane bands are not stacked"
    for lane, band in zip(diagram.lanes, bands, strict=True):
        for ref in lane.iterfind("bpmn:flowNodeRef", NS):
            assert inside(diagram.box(ref.text.strip()), band), f"{ref.text} is outside the band of {lane.get('name')}"
    for el in diagram.nodes:
        assert inside(diagram.box(el.get("id")), pool)
    solid = [el.get("id") for el in diagram.nodes if etree.QName(el).localname != "boundaryEvent"]
    for a, b in combinations(solid, 2):
        (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = diagram.box(a), diagram.box(b)
        assert ax2 <= bx1 or bx2 <= ax1 or ay2 <= by1 or by2 <= ay1, f"{a} overlaps {b}"


def test_boundary_events_sit_on_the_border_of_their_activity(diagram):
    for el in diagram.process.iterfind("bpmn:boundaryEvent", NS):
        x1, y1, x2, y2 = diagram.box(el.get("id"))
        assert on_border(((x1 + x2) / 2, (y1 + y2) / 2), diagram.box(el.get("attachedToRef"))), el.get("id")
    timers = [el.get("id") for el in diagram.process.iterfind("bpmn:boundaryEvent", NS)]
    for a, b in combinations(timers, 2):
        (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = diagram.box(a), diagram.box(b)
        assert ax2 <= bx1 or bx2 <= ax1 or ay2 <= by1 or by2 <= ay1, f"{a} overlaps {b}"


def test_edges_are_orthogonal_from_border_to_border_and_miss_other_shapes(diagram):
    hosts = {el.get("id"): el.get("attachedToRef") for el in diagram.process.iterfind("bpmn:boundaryEvent", NS)}
    for flow in diagram.flows:
        source, target, points = flow.get("sourceRef"), flow.get("targetRef"), diagram.waypoints(flow.get("id"))
        assert on_border(points[0], diagram.box(source)) and on_border(points[-1], diagram.box(target)), flow.get("id")
        for (x1, y1), (x2, y2) in pairwise(points):
            assert x1 == x2 or y1 == y2, f"{flow.get('id')} has a slanted segment"
            for el in diagram.nodes:
                if el.get("id") in (source, target, hosts.get(source)):
                    continue
                bx1, by1, bx2, by2 = diagram.box(el.get("id"))
                crosses = min(x1, x2) < bx2 and max(x1, x2) > bx1 and min(y1, y2) < by2 and max(y1, y2) > by1
                assert not crosses, f"{flow.get('id')} runs through {el.get('id')}"


def test_bundle_still_parses_with_spiffworkflow_validator():
    parser = SpiffBpmnParser(validator=VALIDATOR)
    parser.add_bpmn_files([str(BUNDLE / name) for name in FILES])
    parser.add_dmn_files([str(BUNDLE / "dispute_triage.dmn")])
    spec = parser.get_spec("dispute_lifecycle")
    assert spec.name == "dispute_lifecycle"
    assert {"village_mediation", "town_mediation", "county_mediation", "litigation"} <= set(
        parser.get_subprocess_specs("dispute_lifecycle"))


def test_layout_tool_is_idempotent_and_touches_only_the_di_block(tmp_path):
    """Re-running the tool changes nothing; from a file without DI it writes back exactly the committed one."""
    copies, stripped = [], []
    for name in FILES:
        shutil.copy(BUNDLE / name, tmp_path / name)
        copies.append(tmp_path / name)
        bare = tmp_path / f"bare_{name}"
        bare.write_text(re.sub(r"  <bpmndi:BPMNDiagram\b.*</bpmndi:BPMNDiagram>\n", "",
                               (BUNDLE / name).read_text("utf-8"), flags=re.S), "utf-8")
        assert "BPMNDiagram" not in bare.read_text("utf-8")
        stripped.append(bare)
    result = subprocess.run([sys.executable, str(TOOL), *map(str, copies + stripped)],
                            capture_output=True, text=True, check=True)
    assert "laid out" in result.stdout  # the stripped copies got their DI back
    for name in FILES:
        committed = (BUNDLE / name).read_bytes()
        assert (tmp_path / name).read_bytes() == committed, f"{name} changes when laid out again"
        assert (tmp_path / f"bare_{name}").read_bytes() == committed, f"{name}: the tool's output differs"
