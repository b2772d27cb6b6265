"""The online data hall (线上政务数据大厅): the web console of the catalog service, at /hall."""
