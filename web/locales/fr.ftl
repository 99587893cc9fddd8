# The pages' texts in French. Every message here has its English twin in en.ftl (a test
# checks it). Arguments ($name) are escaped before they are put in; the texts themselves may
# hold simple markup.

## Shared words

yes = Oui
no = Non
all = tous
save = Enregistrer
show = Afficher
filter = Filtrer
overdue = (dépassée)
email-address = Adresse e-mail
password = Mot de passe
logout = Se déconnecter
field-required = (obligatoire)
form-has-errors = Certaines réponses sont à corriger ; rien n'a été enregistré.
form-already-sent = Ce formulaire avait déjà été envoyé, avec d'autres réponses, comme demande <strong>{ $reference }</strong>. Vérifiez les réponses ci-dessous et envoyez-les de nouveau pour faire une nouvelle demande.
request-ref = Référence { $reference }

## Column headings

col-due = Échéance
col-task = Tâche
col-request = Demande
col-desk = Guichet
col-role = Rôle
col-claimed-by = Prise par
col-date = Date
col-who = Qui
col-what = Quoi
col-revision = Révision
col-version = Version
col-deployed = Déployée le
col-running = En cours
col-ended = Closes
col-group = Groupe
col-requests = Demandes
col-mean = Moyenne
col-median = Médiane
col-max = Max
col-indicator = Indicateur
col-value = Valeur
col-unit = Unité
col-target = Cible
col-state = État
col-reference = Référence
col-title = Titre
col-submitted = Déposée
col-closed = Close
col-created = Créé
col-kind = Type
col-recipients = Destinataires
col-subject = Objet
col-attempts = Essais
col-last-error = Dernière erreur
col-address = Adresse
col-admin = Administrateur
col-prefix = Préfixe
col-account = Compte
col-last-used = Dernier usage
col-members = Membres

## The portal

home-title = Accueil
home-heading = Guichets de données de santé
home-choose = Choisissez le guichet auquel adresser votre demande d'accès aux données.
home-follow = Vous avez déjà déposé une demande ? <a href="/follow">Retrouver ma demande</a> (un nouveau lien de suivi par courriel).
desk-submit = Envoyer la demande
submitted-heading = Demande envoyée
submitted-notice = Votre demande « { $title } » est enregistrée sous la référence <strong>{ $reference }</strong>.
submitted-next = Un courriel de confirmation vous est adressé, avec un lien personnel pour suivre votre demande et répondre aux questions du guichet.

## A task

task-request = Demande « { $title } » (référence { $reference })
task-see-request = voir la demande
task-deadline = Échéance : <strong>{ $deadline }</strong>
task-comment = Commentaire
task-comment-required = (obligatoire pour certaines décisions)
task-comment-help = Visible du personnel du guichet, jamais du porteur de projet.
task-claimed-by = Prise par { $assignee }.
task-open-to-role = Ouverte à votre rôle.
task-claim = Prendre la tâche
task-release = Rendre la tâche
task-delegate-to = Confier la tâche à (adresse e-mail)
task-delegate = Confier
task-with-comment = (avec commentaire)
task-finish = Terminer la tâche
task-decided = Votre décision est enregistrée. La demande suit son cours.
done-heading = Merci
done-title = Merci

## The sponsor's page

status-title = Votre demande
status-heading-sponsor = Votre demande « { $title } »
status-heading = Demande « { $title } »
status-answer-until = Réponse attendue avant le <strong>{ $until }</strong>.
status-send-answer = Envoyer la réponse
status-withdraw-heading = Retirer la demande
status-withdraw-help = Vous pouvez retirer votre demande à tout moment ; le guichet en sera informé.
status-withdraw-link = Retirer ma demande…
status-answered = Votre réponse est enregistrée. Merci.
status-withdrawn = Votre demande est retirée.
status-waiting-for-you = Le guichet attend une réponse de votre part : voir ci-dessous.
status-in-review = Votre demande est en cours d'examen.
status-accepted = Votre demande est acceptée.
status-rejected = Votre demande n'a pas été acceptée.
status-closed = Votre demande est close.
status-answer-late = Cette réponse n'est plus attendue (déjà envoyée, ou le délai est passé) ; rien n'a été enregistré.
withdraw-title = Retirer la demande
withdraw-heading = Retirer votre demande ?
withdraw-explain = Votre demande « { $title } » (référence { $reference }) sera close, et le travail du guichet sur elle arrêté. Cette action est définitive : pour reprendre le projet, il faudra déposer une nouvelle demande.
withdraw-yes = Oui, retirer ma demande
withdraw-no = Non, revenir à ma demande
lost-heading = Retrouver ma demande
lost-sent = Si cette référence et cette adresse correspondent à une demande, un nouveau lien de suivi vient d'être envoyé à cette adresse. Il peut mettre quelques minutes à arriver.
lost-explain = Vous avez perdu le lien personnel reçu par courriel ? Donnez la référence de votre demande (8 caractères, dans le courriel de confirmation) et l'adresse avec laquelle vous l'avez déposée : un nouveau lien vous sera envoyé.
lost-reference = Référence de la demande
lost-email = Votre adresse e-mail
lost-submit = Recevoir un nouveau lien

## Email links

invalid-title = Lien invalide
invalid-heading = Ce lien n'est plus valide
invalid-why = Le lien a expiré, a déjà servi, ou la tâche a été confiée à quelqu'un d'autre.
invalid-sent = Si ce lien vous était destiné et que la tâche vous attend encore, un nouveau lien vient de vous être envoyé par courriel.
invalid-fresh = Recevoir un nouveau lien par courriel
invalid-follow = Vous avez déposé une demande et cherchez à la suivre ? <a href="/follow">Recevoir un nouveau lien de suivi</a>.

## The dossier

dossier-intake = La demande
dossier-steps = Ce que les étapes ont recueilli
dossier-again = Étape faite plusieurs fois : voici la dernière.
dossier-tasks = Tâches ouvertes
dossier-waits = En attente d'une réponse
dossier-until = (jusqu'au { $until })
dossier-timeline = Historique
state-running = en cours
state-accepted = acceptée
state-rejected = refusée
state-withdrawn = retirée
state-ended = close
actor-desk = guichet
actor-sponsor = porteur de projet
actor-provider = prestataire { $provider }
document-unknown-type = type inconnu
entry-submitted = Demande déposée
entry-task-opened = « { $step } » ouverte pour { $detail }
entry-claimed = « { $step } » prise en charge
entry-released = « { $step } » rendue à son rôle
entry-delegated = « { $step } » confiée à { $detail }
entry-escalated = « { $step } » transmise à { $detail } (délai dépassé)
entry-completed = { $step } : { $outcome }
entry-completed-plain = { $step } : terminée
entry-deadline-passed = Échéance dépassée : « { $step } »
entry-provider-called = « { $step } » confiée au prestataire { $detail }
entry-provider-answered = { $step } : { $outcome } (prestataire)
entry-provider-answered-plain = { $step } : terminée (prestataire)
entry-waiting = En attente d'une réponse : « { $step } »
entry-answered = Réponse reçue : « { $step } »
entry-timed-out = Délai de réponse écoulé : « { $step } »
entry-gate-taken = « { $step } » : suite vers { $detail }
entry-notified = Courriel { $detail }
entry-ended = Demande close : { $result }
entry-cancelled = Demande retirée
entry-cancelled-why = Demande retirée ({ $detail })

## Staff

login-title = Connexion
login-heading = Connexion
login-failed = Adresse ou mot de passe incorrect.
login-disabled = Ce compte est désactivé : adressez-vous à un administrateur du guichet.
login-expired = Ce formulaire de connexion a expiré ou ne vient pas de cette page : saisissez de nouveau vos identifiants.
login-submit = Se connecter
login-wait = Trop de tentatives manquées pour ce compte : réessayez dans { $seconds } s.
inbox-heading = Mes tâches
inbox-more = Les { $shown } tâches les plus urgentes sur { $total }.
inbox-more-than = Les { $shown } tâches les plus urgentes sur plus de { $total }.
inbox-claimed-by = prise par { $assignee }
inbox-empty = Aucune tâche ne vous attend.
preferences-heading = Mes e-mails
preferences-saved = Préférence enregistrée.
preferences-when = Quand une tâche vous attend
preferences-each = Un e-mail par nouvelle tâche et par rappel
preferences-daily = Un résumé par jour, à { $hour } h, des tâches qui vous attendent
preferences-always = Les échéances dépassées, les escalades et les tâches qui vous sont confiées personnellement vous sont toujours signalées aussitôt.
preferences-language = Langue des pages et des e-mails
preferences-expired = Rechargez la page de vos préférences et recommencez.
preferences-digest-choice = Choisissez un e-mail par tâche ou un résumé quotidien.
preferences-language-choice = Langue inconnue : fr ou en.
request-where = Où en est la demande
request-where-help = Les étapes en cours sont entourées de rouge.
task-not-found = Cette tâche n'existe pas ou ne vous est pas ouverte.
task-expired = Rechargez la page de la tâche, puis recommencez.

## Administration

admin-heading = Administration
nav-desks = Guichets
nav-indicators = Indicateurs
nav-requests = Demandes
nav-outbox = Messages
nav-users = Comptes
admin-deployed = Déployé : { $what }.
admin-deployed-what = { $name } : révision { $revision } (version { $version })
admin-deployed-again = { $name } : révision { $revision } (version { $version }), déjà déployée
admin-desks = Guichets déployés
admin-desk-requests = demandes
admin-deploy = Déployer une définition
admin-deploy-help = Collez le fichier KDL du guichet. Un fichier modifié devient une nouvelle révision ; les demandes en cours gardent la leur. Une définition qui a des erreurs n'est pas déployée.
admin-not-deployed = La définition n'est pas déployée : corrigez ces erreurs.
admin-definition = Définition (KDL)
admin-deploy-submit = Vérifier et déployer
admin-expired = Rechargez la page d'administration et recommencez.
indicators-compare = Comparer par
indicators-by-model = modèle de guichet
indicators-by-version = révision
indicators-by-month = mois
indicators-by-quarter = trimestre
indicators-empty = Aucune demande close pour l'instant : les indicateurs portent sur les demandes terminées.
indicators-lead = Délai de traitement
indicators-lead-chart = Délai de traitement des demandes closes (jours)
indicators-days = jours
indicators-task-times = { $desk } : temps moyen par tâche (jours)
indicators-waiting = attente
indicators-working = travail
indicators-met = atteinte
indicators-missed = manquée
indicators-declared = Indicateurs déclarés
indicators-csv = Télécharger en CSV
indicators-time = Où passe le temps
indicators-steps-csv = Temps par étape en CSV
indicators-matrix = Maturité et performance
requests-running = en cours
requests-ended = closes
requests-withdrawn = retirées
outbox-pending = en attente
outbox-dead = en échec définitif
outbox-sent = envoyés
outbox-captured = capturés (sans SMTP)
outbox-retry = Réessayer
outbox-state-pending = en attente
outbox-state-sending = en cours d'envoi
outbox-state-dead = en échec définitif
outbox-state-sent = envoyé
outbox-state-captured = capturé (sans SMTP)
users-add = Créer un compte ou changer un mot de passe
users-password = Mot de passe (12 caractères ou plus)
users-not-email = une adresse e-mail est attendue
users-add-help = Un nouveau mot de passe met fin aux sessions et aux jetons d'API du compte. Un compte créé ici n'est pas administrateur : le bouton de sa ligne lui en donne les droits.
users-grant-admin = Donner les droits d'administrateur
users-disable = Désactiver
users-enable = Réactiver
users-disabled = désactivé le { $date }
users-own-disable = Vous ne pouvez pas désactiver votre propre compte : un autre administrateur le peut.
users-disabled-choice = Choisissez de désactiver ou de réactiver le compte.
users-revoke-admin = Retirer les droits d'administrateur
users-admin-choice = choisissez de donner ou de retirer les droits
users-own-admin = un administrateur ne retire pas ses propres droits : un autre le fera
tokens-heading = Jetons d'API
tokens-help = Un jeton agit au nom d'un compte (scripts), ou d'un prestataire qui vient chercher son travail par l'API. Il n'est montré qu'une fois, à sa création ; un jeton révoqué cesse de fonctionner aussitôt. En ligne de commande : <code>guichet token create</code>.
tokens-account = Compte (adresse)
tokens-provider = ou prestataire (identifiant du fournisseur dans les définitions)
tokens-use = Usage
tokens-use-example = script d'export, entrepôt de données…
tokens-create = Créer un jeton
tokens-revoke = Révoquer
tokens-revoked = révoqué le { $date }
tokens-say-use = dites à quoi sert le jeton (un script, un prestataire)
tokens-one-owner = l'adresse d'un compte ou l'identifiant d'un prestataire, pas les deux
tokens-scopes = Ce qu'il peut faire (ses portées)
scope-read = lire (guichets, demandes, tâches, documents)
scope-submit = déposer des demandes
scope-act = agir (tâches, réponses, retraits, travail d'un prestataire)
scope-deploy = déployer des définitions (administrateurs seulement ; non cochée par défaut)
tokens-expires = Expire après
expires-days = { $days } jours
expires-never = jamais (déconseillé)
tokens-need-scope = cochez au moins une portée
col-scopes = Portées
col-expires = Expire
roles-heading = Rôles des guichets
roles-help = Les membres des rôles sont déclarés dans les définitions (nœuds <code>member</code>) ; déployez une nouvelle révision pour les changer. Un membre sans compte travaille depuis les liens de ses courriels.
roles-requester = le porteur de la demande
roles-no-account = (sans compte)
token-created = Jeton créé
token-copy = Pour { $owner } ({ $name }). Copiez-le maintenant : il ne sera plus jamais montré, seule son empreinte est gardée.
token-header = À envoyer dans l'en-tête <code>Authorization: Bearer …</code> (voir la documentation de l'API).
token-back = Retour aux comptes et jetons

## When something goes wrong

error-not-found = Introuvable
error-not-found-page = Cette page n'existe pas.
error-already-done = Déjà traité
error-already-done-text = Cette action a déjà été faite, ou la demande a changé entre-temps : rechargez la page.
error-refused = Action refusée
error-invalid-choice = Choix invalide
error-unavailable = Service momentanément indisponible
error-unavailable-text = Le service ne peut pas répondre pour l'instant ; réessayez dans un instant.
error-heading = Erreur
error-incident = Une erreur est survenue (incident { $incident }) ; réessayez plus tard. L'exploitant du guichet en a la trace.
error-expired-form = Formulaire expiré
error-unknown-action = Action inconnue
error-reload-from-email = Rechargez la page depuis votre courriel, puis recommencez.
error-overloaded = Service surchargé
error-overloaded-text = Le guichet reçoit trop de demandes à la fois ; réessayez dans quelques secondes. Rien n'a été enregistré.
error-too-many = Trop de demandes
error-too-many-seconds = Trop de demandes depuis cette adresse ou pour ce destinataire : réessayez dans { $seconds } s. Rien n'a été enregistré ni envoyé.
error-too-many-minutes = Trop de demandes depuis cette adresse ou pour ce destinataire : réessayez dans { $minutes } min. Rien n'a été enregistré ni envoyé.

## Form errors and refusals

problem-unknown-field = champ inconnu (cette étape a : { $known })
problem-no-data = cette étape ne prend aucune donnée
problem-required = obligatoire
problem-expected-text = un texte est attendu
problem-too-long = { $max } caractères au plus
problem-too-short = { $min } caractères au moins
problem-control-character = contient un caractère de contrôle (U+{ $code }) : retirez-le
problem-not-email = « { $value } » n'est pas une adresse e-mail
problem-not-date = « { $value } » n'est pas une date (AAAA-MM-JJ, ou choisissez-la)
problem-not-number = un nombre est attendu
problem-below-min = au moins { $min }
problem-above-max = au plus { $max }
problem-not-option = « { $value } » n'est pas l'un des choix : { $options }
problem-expected-option = choisissez l'une des options
problem-not-yes-no = oui ou non
problem-not-document = un document est attendu
problem-bad-document = document invalide ({ $detail })
problem-document-too-large = le document est trop volumineux : { $size } pour { $limit } au plus
problem-document-type = un document de type { $type } n'est pas accepté ici : { $accept }
problem-document-over-limit = le document est trop volumineux : { $limit } au plus
problem-comment-required = obligatoire avec la décision « { $outcome } » : dites pourquoi
refusal-not-running = La demande n'est plus en cours.
refusal-unknown-task = Cette tâche n'est plus ouverte.
refusal-claimed-by = Cette tâche est prise par { $by }.
refusal-task-transition = Cette action n'est pas possible sur la tâche dans son état actuel.
refusal-outcome-required = Choisissez une décision : { $allowed }.
refusal-unknown-outcome = « { $given } » n'est pas une décision de cette tâche : { $allowed }.
refusal-no-outcomes = Cette tâche ne prend pas de décision.
refusal-unknown-event = Cette réponse n'est pas attendue.
refusal-not-awaited = Rien n'attend cette réponse pour l'instant (la demande n'en est pas à cette étape, y a déjà répondu, ou a attendu trop longtemps).
refusal-unknown-role = Rôle inconnu : { $role }.
