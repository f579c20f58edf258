-- People across tools: the org's mapping of emails (Cursor) to GitHub logins (Copilot), set by
-- its admins and replaced whole by each PUT. Both sides are stored lowercased (emails and GitHub
-- logins compare case-insensitively), so the people view joins them with plain equality. The
-- primary key serves the GET (by email) and the join from the Cursor side; the unique key
-- keeps the mapping one to one. Applied with search_path set to the service's schema.
CREATE TABLE identities (
    org_id text NOT NULL,
    email text NOT NULL CHECK (email = lower(email)),
    github_login text NOT NULL CHECK (github_login = lower(github_login)),
    PRIMARY KEY (org_id, email),
    UNIQUE (org_id, github_login)
);
