"""The district and the timetable in the formats people exchange: CSV sheets of offerings and
demands (``csvio``), iCalendar feeds of a timetable (``ical``), and edits of the stored
district document as pure functions of bytes (``district_edits``, run in a child process for a
province's upload). It builds on the scheduler's domain only, never on the solver."""
