# The pages' texts in English. Every message here has its French twin in fr.ftl (a test
# checks it). Arguments ($name) are escaped before they are put in; the texts themselves may
# hold simple markup.

## Shared words

yes = Yes
no = No
all = all
save = Save
show = Show
filter = Filter
overdue = (overdue)
email-address = Email address
password = Password
logout = Sign out
field-required = (required)
form-has-errors = Some answers need correcting; nothing was saved.
form-already-sent = This form had already been sent, with other answers, as request <strong>{ $reference }</strong>. Check the answers below and send them again to make a new request.
request-ref = Reference { $reference }

## Column headings

col-due = Due
col-task = Task
col-request = Request
col-desk = Desk
col-role = Role
col-claimed-by = Claimed by
col-date = Date
col-who = Who
col-what = What
col-revision = Revision
col-version = Version
col-deployed = Deployed on
col-running = Running
col-ended = Closed
col-group = Group
col-requests = Requests
col-mean = Mean
col-median = Median
col-max = Max
col-indicator = Indicator
col-value = Value
col-unit = Unit
col-target = Target
col-state = State
col-reference = Reference
col-title = Title
col-submitted = Submitted
col-closed = Closed on
col-created = Created
col-kind = Kind
col-recipients = Recipients
col-subject = Subject
col-attempts = Attempts
col-last-error = Last error
col-address = Address
col-admin = Administrator
col-prefix = Prefix
col-account = Account
col-last-used = Last used
col-members = Members

## The portal

home-title = Home
home-heading = Health data access desks
home-choose = Choose the desk to send your data access request to.
home-follow = Already sent a request? <a href="/follow">Find my request</a> (a new follow-up link by email).
desk-submit = Send the request
submitted-heading = Request sent
submitted-notice = Your request “{ $title }” is recorded under the reference <strong>{ $reference }</strong>.
submitted-next = A confirmation email is on its way to you, with a personal link to follow your request and answer the desk's questions.

## A task

task-request = Request “{ $title }” (reference { $reference })
task-see-request = see the request
task-deadline = Due: <strong>{ $deadline }</strong>
task-comment = Comment
task-comment-required = (required for some decisions)
task-comment-help = Seen by the desk's staff, never by the project sponsor.
task-claimed-by = Claimed by { $assignee }.
task-open-to-role = Open to your role.
task-claim = Claim the task
task-release = Give the task back
task-delegate-to = Hand the task to (email address)
task-delegate = Hand over
task-with-comment = (with a comment)
task-finish = Finish the task
task-decided = Your decision is recorded. The request moves on.
done-heading = Thank you
done-title = Thank you

## The sponsor's page

status-title = Your request
status-heading-sponsor = Your request “{ $title }”
status-heading = Request “{ $title }”
status-answer-until = Answer expected by <strong>{ $until }</strong>.
status-send-answer = Send the answer
status-withdraw-heading = Withdraw the request
status-withdraw-help = You may withdraw your request at any time; the desk will be told.
status-withdraw-link = Withdraw my request…
status-answered = Your answer is recorded. Thank you.
status-withdrawn = Your request is withdrawn.
status-waiting-for-you = The desk is waiting for an answer from you: see below.
status-in-review = Your request is being reviewed.
status-accepted = Your request is accepted.
status-rejected = Your request was not accepted.
status-closed = Your request is closed.
status-answer-late = This answer is no longer expected (already sent, or its time has passed); nothing was recorded.
withdraw-title = Withdraw the request
withdraw-heading = Withdraw your request?
withdraw-explain = Your request “{ $title }” (reference { $reference }) will be closed, and the desk's work on it stopped. This cannot be undone: to take the project up again, a new request must be sent.
withdraw-yes = Yes, withdraw my request
withdraw-no = No, back to my request
lost-heading = Find my request
lost-sent = If this reference and this address match a request, a new follow-up link has just been sent to that address. It may take a few minutes to arrive.
lost-explain = Lost the personal link you received by email? Give your request's reference (8 characters, in the confirmation email) and the address you sent it from: a new link will be sent to you.
lost-reference = Request reference
lost-email = Your email address
lost-submit = Get a new link

## Email links

invalid-title = Invalid link
invalid-heading = This link is no longer valid
invalid-why = The link has expired, has already been used, or the task was handed to someone else.
invalid-sent = If this link was meant for you and the task still awaits you, a new link has just been sent to you by email.
invalid-fresh = Get a new link by email
invalid-follow = Sent a request and want to follow it? <a href="/follow">Get a new follow-up link</a>.

## The dossier

dossier-intake = The request
dossier-steps = What the steps collected
dossier-again = Step done more than once: this is the last time.
dossier-tasks = Open tasks
dossier-waits = Waiting for an answer
dossier-until = (until { $until })
dossier-timeline = History
state-running = running
state-accepted = accepted
state-rejected = rejected
state-withdrawn = withdrawn
state-ended = closed
actor-desk = desk
actor-sponsor = project sponsor
actor-provider = provider { $provider }
document-unknown-type = unknown type
entry-submitted = Request submitted
entry-task-opened = “{ $step }” opened for { $detail }
entry-claimed = “{ $step }” claimed
entry-released = “{ $step }” given back to its role
entry-delegated = “{ $step }” handed to { $detail }
entry-escalated = “{ $step }” passed on to { $detail } (deadline passed)
entry-completed = { $step }: { $outcome }
entry-completed-plain = { $step }: done
entry-deadline-passed = Deadline passed: “{ $step }”
entry-provider-called = “{ $step }” handed to the provider { $detail }
entry-provider-answered = { $step }: { $outcome } (provider)
entry-provider-answered-plain = { $step }: done (provider)
entry-waiting = Waiting for an answer: “{ $step }”
entry-answered = Answer received: “{ $step }”
entry-timed-out = Time to answer elapsed: “{ $step }”
entry-gate-taken = “{ $step }”: on to { $detail }
entry-notified = Email { $detail }
entry-ended = Request closed: { $result }
entry-cancelled = Request withdrawn
entry-cancelled-why = Request withdrawn ({ $detail })

## Staff

login-title = Sign in
login-heading = Sign in
login-failed = Wrong address or password.
login-disabled = This account is disabled: ask an administrator of the desk.
login-expired = This sign-in form has expired or did not come from this page: enter your details again.
login-submit = Sign in
login-wait = Too many failed attempts for this account: try again in { $seconds } s.
inbox-heading = My tasks
inbox-more = The { $shown } most urgent tasks of { $total }.
inbox-more-than = The { $shown } most urgent tasks of more than { $total }.
inbox-claimed-by = claimed by { $assignee }
inbox-empty = No task awaits you.
preferences-heading = My emails
preferences-saved = Preference saved.
preferences-when = When a task awaits you
preferences-each = One email per new task and per reminder
preferences-daily = One summary a day, at { $hour }:00, of the tasks awaiting you
preferences-always = Passed deadlines, escalations and tasks handed to you personally are always told to you at once.
preferences-language = Language of pages and emails
preferences-expired = Reload your preferences page and try again.
preferences-digest-choice = Choose one email per task or a daily summary.
preferences-language-choice = Unknown language: fr or en.
request-where = Where the request stands
request-where-help = The steps under way are circled in red.
task-not-found = This task does not exist or is not open to you.
task-expired = Reload the task's page, then try again.

## Administration

admin-heading = Administration
nav-desks = Desks
nav-indicators = Indicators
nav-requests = Requests
nav-outbox = Messages
nav-users = Accounts
admin-deployed = Deployed: { $what }.
admin-deployed-what = { $name }: revision { $revision } (version { $version })
admin-deployed-again = { $name }: revision { $revision } (version { $version }), already deployed
admin-desks = Deployed desks
admin-desk-requests = requests
admin-deploy = Deploy a definition
admin-deploy-help = Paste the desk's KDL file. A changed file becomes a new revision; running requests keep theirs. A definition with errors is not deployed.
admin-not-deployed = The definition is not deployed: correct these errors.
admin-definition = Definition (KDL)
admin-deploy-submit = Check and deploy
admin-expired = Reload the administration page and try again.
indicators-compare = Compare by
indicators-by-model = desk model
indicators-by-version = revision
indicators-by-month = month
indicators-by-quarter = quarter
indicators-empty = No closed request yet: the indicators are about finished requests.
indicators-lead = Lead time
indicators-lead-chart = Lead time of closed requests (days)
indicators-days = days
indicators-task-times = { $desk }: mean time per task (days)
indicators-waiting = waiting
indicators-working = working
indicators-met = met
indicators-missed = missed
indicators-declared = Declared indicators
indicators-csv = Download as CSV
indicators-time = Where the time goes
indicators-steps-csv = Time per step as CSV
indicators-matrix = Maturity and performance
requests-running = running
requests-ended = closed
requests-withdrawn = withdrawn
outbox-pending = pending
outbox-dead = failed for good
outbox-sent = sent
outbox-captured = captured (no SMTP)
outbox-retry = Retry
outbox-state-pending = pending
outbox-state-sending = being sent
outbox-state-dead = failed for good
outbox-state-sent = sent
outbox-state-captured = captured (no SMTP)
users-add = Create an account or change a password
users-password = Password (12 characters or more)
users-not-email = an email address is expected
users-add-help = A new password ends the account's sessions and API tokens. An account created here is not an administrator: the button on its row gives it the right.
users-grant-admin = Make administrator
users-disable = Disable
users-enable = Enable
users-disabled = disabled on { $date }
users-own-disable = You cannot disable your own account: another administrator can.
users-disabled-choice = Choose whether to disable or enable the account.
users-revoke-admin = Remove administrator right
users-admin-choice = choose to give or to take the right
users-own-admin = an administrator does not remove their own right: another one will
tokens-heading = API tokens
tokens-help = A token acts for an account (scripts), or for a provider that fetches its work through the API. It is shown once, when created; a revoked token stops working at once. On the command line: <code>guichet token create</code>.
tokens-account = Account (address)
tokens-provider = or provider (the provider's id in the definitions)
tokens-use = Use
tokens-use-example = export script, data warehouse…
tokens-create = Create a token
tokens-revoke = Revoke
tokens-revoked = revoked on { $date }
tokens-say-use = say what the token is for (a script, a provider)
tokens-one-owner = an account's address or a provider's id, not both
tokens-scopes = What it may do (its scopes)
scope-read = read (desks, requests, tasks, documents)
scope-submit = submit requests
scope-act = act (tasks, answers, withdrawals, a provider's work)
scope-deploy = deploy definitions (administrators only; not ticked by default)
tokens-expires = Expires after
expires-days = { $days } days
expires-never = never (not advised)
tokens-need-scope = tick at least one scope
col-scopes = Scopes
col-expires = Expires
roles-heading = The desks' roles
roles-help = Role members are declared in the definitions (<code>member</code> nodes); deploy a new revision to change them. A member without an account works from the links in their emails.
roles-requester = the request's sponsor
roles-no-account = (no account)
token-created = Token created
token-copy = For { $owner } ({ $name }). Copy it now: it will never be shown again, only its fingerprint is kept.
token-header = To be sent in the <code>Authorization: Bearer …</code> header (see the API's documentation).
token-back = Back to accounts and tokens

## When something goes wrong

error-not-found = Not found
error-not-found-page = This page does not exist.
error-already-done = Already done
error-already-done-text = This was already done, or the request changed meanwhile: reload the page.
error-refused = Action refused
error-invalid-choice = Invalid choice
error-unavailable = Service unavailable for now
error-unavailable-text = The service cannot answer right now; try again in a moment.
error-heading = Error
error-incident = Something went wrong (incident { $incident }); try again later. The desk's operator has a record of it.
error-expired-form = Form expired
error-unknown-action = Unknown action
error-reload-from-email = Reload the page from your email, then try again.
error-overloaded = Service overloaded
error-overloaded-text = The desk is receiving too many requests at once; try again in a few seconds. Nothing was recorded.
error-too-many = Too many requests
error-too-many-seconds = Too many requests from this address or for this recipient: try again in { $seconds } s. Nothing was recorded or sent.
error-too-many-minutes = Too many requests from this address or for this recipient: try again in { $minutes } min. Nothing was recorded or sent.

## Form errors and refusals

problem-unknown-field = unknown field (this step has: { $known })
problem-no-data = this step takes no data
problem-required = required
problem-expected-text = a text is expected
problem-too-long = { $max } characters at most
problem-too-short = { $min } characters at least
problem-control-character = contains a control character (U+{ $code }): remove it
problem-not-email = “{ $value }” is not an email address
problem-not-date = “{ $value }” is not a date (YYYY-MM-DD, or pick it)
problem-not-number = a number is expected
problem-below-min = at least { $min }
problem-above-max = at most { $max }
problem-not-option = “{ $value }” is not one of the choices: { $options }
problem-expected-option = choose one of the options
problem-not-yes-no = yes or no
problem-not-document = a document is expected
problem-bad-document = invalid document ({ $detail })
problem-document-too-large = the document is too large: { $size } for { $limit } at most
problem-document-type = a document of type { $type } is not accepted here: { $accept }
problem-document-over-limit = the document is too large: { $limit } at most
problem-comment-required = required with the decision “{ $outcome }”: say why
refusal-not-running = The request is no longer running.
refusal-unknown-task = This task is no longer open.
refusal-claimed-by = This task is claimed by { $by }.
refusal-task-transition = This action is not possible on the task as it stands.
refusal-outcome-required = Choose a decision: { $allowed }.
refusal-unknown-outcome = “{ $given }” is not a decision of this task: { $allowed }.
refusal-no-outcomes = This task takes no decision.
refusal-unknown-event = This answer is not expected.
refusal-not-awaited = Nothing waits for this answer now (the request has not reached that step, was answered already, or waited too long).
refusal-unknown-role = Unknown role: { $role }.
