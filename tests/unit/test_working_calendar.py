"""Working days with the official 2026 calendar: weekends, holidays and adjusted working days."""
from datetime import UTC, date, datetime

import pytest

from app.scheduling.calendar import SHIPPED, WorkingCalendar, parse_calendar_file


@pytest.fixture(scope="module")
def cal():
    holidays, workdays = parse_calendar_file((SHIPPED[0]).read_text("utf-8"))
    return WorkingCalendar(holidays=frozenset(holidays), workdays=frozenset(workdays))


def test_shipped_2026_calendar_matches_the_state_council_notice(cal):
    assert len(cal.holidays) == 3 + 9 + 3 + 5 + 3 + 3 + 7
    assert sorted(cal.workdays) == [date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28),
                                    date(2026, 5, 9), date(2026, 9, 20), date(2026, 10, 10)]
    assert not cal.is_working_day(date(2026, 10, 5))      # National Day, a Monday
    assert cal.is_working_day(date(2026, 10, 10))         # adjusted working Saturday
    assert not cal.is_working_day(date(2026, 11, 21))     # an ordinary Saturday
    assert cal.is_working_day(date(2026, 11, 23))         # an ordinary Monday


@pytest.mark.parametrize("start, count, expected", [
    (date(2026, 11, 20), 1, date(2026, 11, 23)),   # Friday + 1 → Monday
    (date(2026, 11, 23), 5, date(2026, 11, 30)),   # a plain week
    (date(2026, 9, 30), 1, date(2026, 10, 8)),     # across the National Day holiday
    (date(2026, 10, 8), 2, date(2026, 10, 10)),    # Thu 8 → Fri 9 → adjusted Sat 10
    (date(2026, 2, 13), 3, date(2026, 2, 25)),     # Spring Festival: Sat 14 works, 15-23 off
    (date(2026, 12, 31), 1, date(2027, 1, 1)),     # 2027 not yet loaded: plain weekdays
])
def test_add_working_days(cal, start, count, expected):
    assert cal.add_working_days(start, count) == expected


def test_12345_complaint_limit_of_13_working_days_spans_the_holiday(cal):
    # A complaint filed on 2026-09-24 (Thursday): 13 working days skip the Mid-Autumn and
    # National Day holidays and count the adjusted Saturday 10 October.
    # 28, 29, 30 Sep; 8, 9, 10 (Sat), 12-16, 19, 20 Oct.
    assert cal.add_working_days(date(2026, 9, 24), 13) == date(2026, 10, 20)


def test_duration_from_turns_working_days_into_a_timer_duration(cal):
    friday_evening_local = datetime(2026, 9, 30, 10, 0, tzinfo=UTC)  # 18:00 in Shanghai
    assert cal.duration_from(friday_evening_local, "1WD") == "P8D"
    assert cal.duration_from(friday_evening_local, "P15D") == "P15D", "ISO durations pass through"
    late_utc = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)  # already Saturday in Shanghai
    assert cal.duration_from(late_utc, "1wd") == "P2D", "counted in local dates"


def test_calendar_files_are_checked():
    with pytest.raises(ValueError, match="both holiday and working day"):
        parse_calendar_file('{"holidays": [{"from": "2026-01-01", "to": "2026-01-02"}],'
                            ' "workdays": [{"date": "2026-01-02"}]}')
    with pytest.raises(ValueError, match="before"):
        parse_calendar_file('{"holidays": [{"from": "2026-01-05", "to": "2026-01-02"}]}')
