-- A collection system's tables, as a debt-collection company might have them (PostgreSQL and
-- MariaDB alike): the parties it pursues, their cases, what happened on each case, the letters
-- sent, payment plans and payments, and the newsletter list its CRM keeps in the same database.
-- collection-dataset.yaml tells Gallring's agent what of it to erase, and how.
CREATE TABLE party (
    party_id        BIGINT PRIMARY KEY,
    personal_number VARCHAR(13) NOT NULL UNIQUE,  -- as the staff type it: 811218-9876 or 198112189876
    full_name       VARCHAR(200) NOT NULL,
    street          VARCHAR(200),
    postal_code     VARCHAR(10),
    city            VARCHAR(100),
    email           VARCHAR(200),
    phone           VARCHAR(30),
    modified_at     TIMESTAMP NOT NULL
);
CREATE TABLE debt_case (
    case_id         BIGINT PRIMARY KEY,
    case_reference  VARCHAR(20) NOT NULL UNIQUE,  -- what upstream sends as scope.case_id
    debtor_party_id BIGINT NOT NULL REFERENCES party (party_id),
    client_number   VARCHAR(20) NOT NULL,
    principal_ore   BIGINT NOT NULL,
    status          VARCHAR(20) NOT NULL,
    closed_on       DATE,
    modified_at     TIMESTAMP NOT NULL
);
CREATE INDEX debt_case_debtor ON debt_case (debtor_party_id);
CREATE TABLE case_event (
    event_id        BIGINT PRIMARY KEY,
    case_id         BIGINT NOT NULL REFERENCES debt_case (case_id),
    happened_at     TIMESTAMP NOT NULL,
    kind            VARCHAR(30) NOT NULL,
    note            TEXT,                         -- free text: "called, promised to pay on…"
    modified_at     TIMESTAMP NOT NULL
);
CREATE INDEX case_event_case ON case_event (case_id);
CREATE TABLE letter (
    letter_id       BIGINT PRIMARY KEY,
    case_id         BIGINT NOT NULL REFERENCES debt_case (case_id),
    template        VARCHAR(40) NOT NULL,
    sent_on         DATE NOT NULL,
    document_path   VARCHAR(300) NOT NULL,
    modified_at     TIMESTAMP NOT NULL
);
CREATE INDEX letter_case ON letter (case_id);
CREATE TABLE payment_plan (
    plan_id         BIGINT PRIMARY KEY,
    case_id         BIGINT NOT NULL REFERENCES debt_case (case_id),
    monthly_ore     BIGINT NOT NULL,
    first_due_on    DATE NOT NULL,
    modified_at     TIMESTAMP NOT NULL
);
CREATE INDEX payment_plan_case ON payment_plan (case_id);
CREATE TABLE payment (
    payment_id      BIGINT PRIMARY KEY,
    case_id         BIGINT REFERENCES debt_case (case_id),  -- NULL once the case is erased
    amount_ore      BIGINT NOT NULL,
    paid_on         DATE NOT NULL,
    payer_name      VARCHAR(200),
    payer_account   VARCHAR(34),
    modified_at     TIMESTAMP NOT NULL
);
CREATE INDEX payment_case ON payment (case_id);
CREATE TABLE newsletter_subscription (
    subscription_id BIGINT PRIMARY KEY,
    crm_contact_id  BIGINT NOT NULL UNIQUE,       -- events name the reader ref crm:<id>
    email           VARCHAR(200) NOT NULL,
    subscribed_on   DATE NOT NULL,
    modified_at     TIMESTAMP NOT NULL
);
