"""The HTML report: Vietnamese by default (``lang="en"`` for English), every finding with its
evidence in the page (no clicks), scores per host, site and requirement group, the diff, the
waivers and the remediation plan, printable (A4 landscape, one host per page)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from dcops.audit.catalogue import Catalogue
from dcops.audit.plan import Plan

TEMPLATE = Path(__file__).with_name("report.html.j2")
STATUSES = ("pass", "fail", "error", "waived", "notapplicable", "manual")

WORDS = {
    "vi": {
        "pass": "Đạt",
        "fail": "Chưa đạt",
        "error": "Lỗi kiểm tra",
        "notapplicable": "Không áp dụng",
        "waived": "Miễn trừ",
        "manual": "Chưa đánh giá",
    },
    "en": {
        "pass": "Pass",
        "fail": "Fail",
        "error": "Error",
        "notapplicable": "Not applicable",
        "waived": "Waived",
        "manual": "Not reviewed",
    },
}
SEVERITY = {
    "vi": {"critical": "Nghiêm trọng", "high": "Cao", "medium": "Trung bình", "low": "Thấp"},
    "en": {"critical": "Critical", "high": "High", "medium": "Medium", "low": "Low"},
}
GROUPS = {
    "vi": {
        "management": "Quản lý (7.1)",
        "network": "Mạng (7.2.1)",
        "authentication": "Xác thực",
        "access": "Kiểm soát truy cập",
        "logging": "Nhật ký hệ thống",
        "intrusion": "Phòng chống xâm nhập",
        "malware": "Phòng chống mã độc",
        "application": "Ứng dụng (7.2.3)",
        "data": "Dữ liệu (7.2.4)",
    },
    "en": {
        "management": "Management (7.1)",
        "network": "Network (7.2.1)",
        "authentication": "Authentication",
        "access": "Access control",
        "logging": "System logs",
        "intrusion": "Intrusion prevention",
        "malware": "Malware protection",
        "application": "Application (7.2.3)",
        "data": "Data (7.2.4)",
    },
}
TEXT = {
    "vi": {
        "title": "Báo cáo đánh giá tuân thủ an toàn hệ thống thông tin",
        "province": "Tỉnh",
        "run": "Lần đánh giá",
        "started": "Bắt đầu",
        "finished": "Kết thúc",
        "catalogue": "Bộ tiêu chí",
        "level": "cấp độ",
        "checks": "phép kiểm tra",
        "scope": "Phạm vi",
        "hosts": "máy chủ",
        "summary": "Tổng hợp",
        "score": "Tỷ lệ đạt",
        "score_note": "tỷ lệ Đạt trên (Đạt + Chưa đạt + Lỗi kiểm tra); Miễn trừ, Không áp dụng và Chưa đánh giá không tính.",
        "by_group": "Theo nhóm yêu cầu",
        "by_site": "Theo điểm (site)",
        "by_host": "Theo máy chủ",
        "group": "Nhóm",
        "site": "Điểm",
        "host": "Máy chủ",
        "unreachable": "Máy chủ không thu thập được dữ liệu",
        "diff": "Thay đổi so với lần trước",
        "previous": "Lần trước",
        "unchanged_passing": "Số mục vẫn đạt",
        "new_failures": "Mới chưa đạt",
        "fixed": "Đã khắc phục",
        "unchanged": "Vẫn chưa đạt",
        "before": "Trước",
        "now": "Nay",
        "no_previous": "Đây là lần đánh giá đầu tiên.",
        "check": "Phép kiểm tra",
        "waivers": "Miễn trừ",
        "waiver": "Miễn trừ",
        "justification": "Lý do",
        "compensating": "Biện pháp bù đắp",
        "approver": "Người phê duyệt",
        "expires": "Hết hạn",
        "expired": "Đã hết hạn",
        "plan": "Kế hoạch khắc phục",
        "plan_empty": "Không có mục cần khắc phục.",
        "owner": "Người phụ trách",
        "deadline": "Thời hạn",
        "status": "Kết quả",
        "first_seen": "Phát hiện",
        "severity": "Mức độ",
        "requirement": "Yêu cầu",
        "result": "Chi tiết",
        "evidence": "Bằng chứng",
        "remediation": "Khắc phục",
        "footer": "Tạo bởi dcops audit. Bằng chứng là giá trị đọc được trên máy chủ; không chứa mật khẩu băm hay khóa bí mật.",
    },
    "en": {
        "title": "Information system security compliance report",
        "province": "Province",
        "run": "Run",
        "started": "Started",
        "finished": "Finished",
        "catalogue": "Catalogue",
        "level": "level",
        "checks": "checks",
        "scope": "Scope",
        "hosts": "hosts",
        "summary": "Summary",
        "score": "Score",
        "score_note": "passed over (passed + failed + error); waived, not applicable and not reviewed are not counted.",
        "by_group": "By requirement group",
        "by_site": "By site",
        "by_host": "By host",
        "group": "Group",
        "site": "Site",
        "host": "Host",
        "unreachable": "Hosts whose facts could not be collected",
        "diff": "Changes since the previous run",
        "previous": "Previous run",
        "unchanged_passing": "Still passing",
        "new_failures": "New failures",
        "fixed": "Fixed",
        "unchanged": "Still failing",
        "before": "Before",
        "now": "Now",
        "no_previous": "This is the first run.",
        "check": "Check",
        "waivers": "Waivers",
        "waiver": "Waiver",
        "justification": "Justification",
        "compensating": "Compensating control",
        "approver": "Approver",
        "expires": "Expires",
        "expired": "Expired",
        "plan": "Remediation plan",
        "plan_empty": "Nothing to remediate.",
        "owner": "Owner",
        "deadline": "Deadline",
        "status": "Status",
        "first_seen": "First seen",
        "severity": "Severity",
        "requirement": "Requirement",
        "result": "Result",
        "evidence": "Evidence",
        "remediation": "Remediation",
        "footer": "Generated by dcops audit. Evidence is what was read on the host;"
        " it holds no password hash and no private key.",
    },
}


def pct(score: float | None) -> str:
    return "—" if score is None else f"{score * 100:.1f}%"


def render_html(doc: dict[str, Any], cat: Catalogue, plan: Plan | None = None, lang: str = "vi") -> str:
    if lang not in TEXT:
        raise ValueError(f"unknown language {lang!r}: vi or en")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=False)
    tpl = env.from_string(TEMPLATE.read_text(encoding="utf-8"))
    by_host: dict[str, list[dict[str, Any]]] = {}
    for f in doc["findings"]:
        by_host.setdefault(f["host"], []).append(f)
    order = {s: i for i, s in enumerate(("fail", "error", "manual", "waived", "pass", "notapplicable"))}
    for fs in by_host.values():
        fs.sort(key=lambda f: (order[f["status"]], f["check"]))
    titles = {c.id: c.title.get(lang) for c in cat.checks} | {f"req:{r.clause}": r.title.get(lang) for r in cat.requirements}
    fixes = {c.id: c.remediation.text(lang) for c in cat.checks}
    groups = GROUPS[lang]
    group_rows = [(groups.get(g, g), tl) for g, tl in doc["scores"]["group"].items()]
    return tpl.render(
        doc=doc,
        lang=lang,
        t=TEXT[lang],
        words=WORDS[lang],
        sev=SEVERITY[lang],
        statuses=STATUSES,
        pct=pct,
        catalogue_title=cat.head.title.get(lang),
        group_rows=group_rows,
        by_host=sorted(by_host.items()),
        titles=titles,
        fixes=fixes,
        waived=[f for f in doc["findings"] if f.get("waiver")],
        errors=[h for h in doc["hosts"] if not h["collected"]],
        plan=[i.model_dump() for i in plan.items] if plan else [],
    )
