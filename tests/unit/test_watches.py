"""Every child watch is filtered by the API server (a label selector on the watch request), not only by the
handler: kopf's `labels=` filter runs in Python after the object was sent, so without a selector a cluster-wide
operator receives every Pod and Deployment of the cluster."""

from __future__ import annotations

import kopf

from modeldeploy.handlers import operator


def test_each_filtered_handler_has_the_same_selector_on_its_watch() -> None:
    settings = kopf.OperatorSettings()
    operator.configure(settings=settings)
    handlers = [h for h in kopf.get_default_registry()._watching.get_all_handlers() if h.labels]
    assert {h.id for h in handlers} >= {"child-pods", "child-deployments", "child-services"}
    for h in handlers:
        # the selector kopf puts on the watch request of this handler's resource
        selectors = [value for key, value in settings.watching.label_selectors.items()
                     if (key.group, key.version, key.any_name) == (h.selector.group, h.selector.version,
                                                                   h.selector.any_name)]
        wanted = ",".join(f"{k}={v}" for k, v in sorted(h.labels.items()))
        assert selectors == [wanted], h.id


def test_model_deployments_themselves_are_watched_unfiltered() -> None:
    settings = kopf.OperatorSettings()
    operator.configure(settings=settings)
    assert not any(key.any_name == "modeldeployments" for key in settings.watching.label_selectors)
