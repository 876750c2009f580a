from twisted.application.service import ServiceMaker

pyliteflux = ServiceMaker(
    "pyliteflux",
    "pyliteflux.tap",
    "Serve a pyliteflux app over HTTP and line-delimited TCP",
    "pyliteflux",
)
