"""The ops console: server-rendered pages (`pages`), their JSON twins (`api`), who may do what
(`auth`), what each page shows (`views`), what each action does (`actions`), plots (`svg`)."""
