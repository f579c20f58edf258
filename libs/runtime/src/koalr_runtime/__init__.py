"""Small shared runtime pieces for the services: logging, settings, Kafka, PostgreSQL,
migrations, credential sealing, HTTP auth and errors. No business logic lives here."""
