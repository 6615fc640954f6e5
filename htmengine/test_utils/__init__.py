"""Helpers for tests of htmengine applications (the original engine's ``htmengine.test_utils``):
`test_case_base.TestCaseBase` with polling checks against the repository, and
`repository_test_utils.HtmengineManagedTempRepository` (a throw-away database)."""
