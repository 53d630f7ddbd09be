"""The copy's two text files: ``LISEZMOI.txt`` (French) and ``README.txt`` (English). They say what the zip holds,
what it leaves out and why, and how to check each file against ``SHA256SUMS``."""

from __future__ import annotations

from collections import Counter

from carnet.export.facts import CopyFacts, class_folder, local


def _when(facts: CopyFacts) -> str:
    return local(facts.created).strftime("%Y-%m-%d %H:%M")


def _classes(facts: CopyFacts) -> list[str]:
    counts = Counter(d.class_code for d in facts.documents)
    return [f"  documents/{class_folder(c)}/  ({n})" for c, n in sorted(counts.items())]


def french(facts: CopyFacts) -> str:
    lines = [
        "COPIE COMPLÈTE DE VOTRE DOSSIER MÉDICAL PARTAGÉ (Carnet)",
        "",
        f"Copie faite le {_when(facts)} (heure de Paris), à la demande "
        f"{'du représentant légal' if facts.requested_by == 'representative' else 'du patient'}.",
        f"Elle contient {len(facts.documents)} document(s) et {len(facts.history)} trace(s) d'accès.",
        "",
        "Ce que contient ce fichier :",
        "  dossier.pdf          le livret lisible : identité, l'essentiel en cas d'urgence (allergies, traitements,",
        "                       problèmes de santé, groupe sanguin, vaccinations, directives anticipées, contacts",
        "                       d'urgence), qui a accès à votre dossier, les demandes d'accès et de rectification et",
        "                       leurs réponses, la liste des documents, les données de remboursement et l'historique",
        "                       des accès ;",
        "  documents/           chaque document, tel qu'il a été déposé, rangé par catégorie :",
        *_classes(facts),
        "  fhir/bundle.json     tout le dossier au format FHIR R4 (Bundle), lisible par un logiciel de santé ;",
        "  fhir/ips.json        la synthèse d'urgence au format international IPS (un document FHIR) ;",
        "  SHA256SUMS           l'empreinte SHA-256 de chaque fichier, pour vérifier qu'aucun n'a été modifié ;",
        "  README.txt           ce texte en anglais.",
        "",
        "Ce qui n'y est pas : les documents que vous avez supprimés de votre dossier, et ceux qu'un professionnel a",
        "rendus temporairement invisibles en attendant de vous les annoncer (ils apparaîtront ensuite dans votre",
        "dossier). Si vous agissez comme représentant légal, les documents de soins confidentiels du mineur n'y",
        "sont pas non plus.",
        "",
        "Vérifier les empreintes :",
        "  Linux :   sha256sum -c SHA256SUMS",
        "  macOS :   shasum -a 256 -c SHA256SUMS",
        "  Windows (PowerShell) :   Get-FileHash -Algorithm SHA256 dossier.pdf",
        "            puis comparez le résultat à la ligne de dossier.pdf dans SHA256SUMS.",
        "Chaque ligne doit répondre « OK » (ou donner la même empreinte).",
        "",
        *_receipt_fr(facts),
        "Cette copie contient des données de santé : gardez-la en lieu sûr et ne la confiez qu'à qui vous choisissez.",
    ]
    return "\n".join(lines) + "\n"


def english(facts: CopyFacts) -> str:
    lines = [
        "COMPLETE COPY OF YOUR SHARED MEDICAL RECORD (Carnet)",
        "",
        f"Copy made on {_when(facts)} (Paris time), at the request of "
        f"{'the legal representative' if facts.requested_by == 'representative' else 'the patient'}.",
        f"It holds {len(facts.documents)} document(s) and {len(facts.history)} access record(s).",
        "",
        "What this file holds:",
        "  dossier.pdf          the readable booklet (in French, with English headings): identity, the emergency",
        "                       essentials (allergies, treatments, health problems, blood group, vaccinations,",
        "                       advance directives, emergency contacts), who has access to the record, access and",
        "                       rectification requests and their answers, the list of documents, the care history",
        "                       (reimbursements) and the access history;",
        "  documents/           each document as it was filed, by category:",
        *_classes(facts),
        "  fhir/bundle.json     the whole record as FHIR R4 (a Bundle), readable by health software;",
        "  fhir/ips.json        the emergency summary as an International Patient Summary (a FHIR document);",
        "  SHA256SUMS           the SHA-256 fingerprint of every file, to check that none was changed;",
        "  LISEZMOI.txt         this text in French.",
        "",
        "What is not here: documents you deleted from your record, and those a professional made invisible for a",
        "while until they are announced to you (they will then appear in your record). If you act as a legal",
        "representative, a minor's confidential care documents are not here either.",
        "",
        "Checking the fingerprints:",
        "  Linux:    sha256sum -c SHA256SUMS",
        "  macOS:    shasum -a 256 -c SHA256SUMS",
        "  Windows (PowerShell):   Get-FileHash -Algorithm SHA256 dossier.pdf",
        "            then compare the result with the dossier.pdf line of SHA256SUMS.",
        "Every line must answer \"OK\" (or give the same fingerprint).",
        "",
        *_receipt_en(facts),
        "This copy holds health data: keep it safe and share it only with whom you choose.",
    ]
    return "\n".join(lines) + "\n"


def _receipt_fr(facts: CopyFacts) -> list[str]:
    if not facts.receipt:
        return []
    return [
        "Le reçu de votre historique (dossier audit/) :",
        "  audit/history.json   l'historique des accès tel que Carnet l'a enchaîné (chaque trace et son empreinte) ;",
        "  audit/receipt.json   le reçu : un point de contrôle signé par Carnet, écrit hors de la base de données,",
        "                       qui engage Carnet sur cet historique (preuve d'inclusion de Merkle, clé publique) ;",
        "  audit/verify_receipt.py   le programme qui vérifie les deux, sans connexion (Python 3 et cryptography) :",
        "      python3 audit/verify_receipt.py audit/receipt.json audit/history.json fhir/bundle.json",
        "  Il répond « OK » si aucune trace n'a été retirée ni modifiée, ici comme dans fhir/bundle.json ; comparez",
        "  l'identifiant de clé qu'il affiche à celui que publie l'exploitant de Carnet.",
        "",
    ]


def _receipt_en(facts: CopyFacts) -> list[str]:
    if not facts.receipt:
        return []
    return [
        "The receipt of your history (folder audit/):",
        "  audit/history.json   the access history as Carnet chained it (every record and its fingerprint);",
        "  audit/receipt.json   the receipt: a checkpoint signed by Carnet and written outside its database, which",
        "                       commits Carnet to this history (Merkle inclusion proof, public key);",
        "  audit/verify_receipt.py   the program that checks both, offline (Python 3 and cryptography):",
        "      python3 audit/verify_receipt.py audit/receipt.json audit/history.json fhir/bundle.json",
        "  It answers \"OK\" if no record was removed or changed, here or in fhir/bundle.json; compare the key id",
        "  it prints with the one the operator of Carnet publishes.",
        "",
    ]
