"""Running Talker's services as local processes: the `talker up` stack, the tests and the benchmarks.

Not part of any service's image: the services never import it.
"""
