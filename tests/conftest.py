"""pytest only (trial ignores this file).

Plain pytest-twisted test functions run the reactor in a greenlet of their
own from the first one on; trial ``TestCase``s spin the reactor themselves
and cannot follow one. So the plain functions run last, after every
``TestCase``, whatever the order of the files.
"""


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: getattr(item, "cls", None) is None)
