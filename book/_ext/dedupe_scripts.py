"""Drop repeated <script> entries from every page: with Jupyter Book 1.x sphinx-thebe's inline
configuration is added twice, and its second ``const THEBE_JS_URL`` is a JavaScript error."""


def _dedupe(app, pagename, templatename, context, doctree):
    seen, kept = set(), []
    for script in context.get("script_files", []):
        # by what the tag says (file and attributes, body included; a missing file is None or "")
        key = (str(getattr(script, "filename", script) or ""), repr(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
