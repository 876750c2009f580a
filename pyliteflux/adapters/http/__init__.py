"""The HTTP adapter: a ``twisted.web`` resource over the pipeline, and our Site.

    site.Site -> channel.GuardedChannel -> site.TwistedRequest.process
              -> resource.HTTPResource -> core.pipeline -> resource (write)
"""

from .resource import HTTPResource
from .site import Site, TwistedRequest

__all__ = ["HTTPResource", "Site", "TwistedRequest"]
