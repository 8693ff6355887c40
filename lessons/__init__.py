"""Lessons: from the published timetable to live rooms, attendance, 开课率 and records."""
