"""The search's errors: each is printed as one line by the command line, which names its exit code."""


class SearchError(Exception):
    """Bad input for a search (a flag, a space, a run folder): one line, exit code 2."""


class RetrainError(RuntimeError):
    """The retrain after a search failed; the search's results on disk are intact (exit code 1)."""
