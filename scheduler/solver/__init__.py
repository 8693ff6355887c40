"""The matching: from a district to a timetable (``solve.solve``).

Candidates (``candidates``), the constraint rows (``problem``, ``rows``), the greedy start
(``greedy``), the HiGHS MIP by parts (``mip``) run in worker processes (``parts``,
``workers``), reasons for unmet demand (``rejections``, ``explain``, ``unmet``) and an
independent check of every hard rule (``verify``). It builds on the scheduler's domain
(``domain``, ``clock``, ``timetable``) only; ``tests/test_architecture.py`` keeps it so.

Nothing is re-exported here: a spawned worker imports ``mip`` by name for every task, and
should not pay for the rest of the solver to do it.
"""
