"""Settings and the plugin framework.

Settings, the hook specifications, the plugin manager, what a plugin declares, choosing the
plugins a configuration names, and building a pipeline's parts from them.
Imports :mod:`eventlog._core` and :mod:`eventlog._records`.
"""
