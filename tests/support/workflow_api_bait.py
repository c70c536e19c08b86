"""Named in events the tests post as `qualified_name`: importing it fails the test run."""

raise AssertionError("the control plane imported a module named in a request")
