"""The plain-language reason shown with each recommendation, in en, es and fr.

Reasons name only what the person told us or chose (a need, a topic, a format, their time);
never a demographic attribute, since none is used to rank.
"""

from __future__ import annotations

LANGUAGES = ("en", "es", "fr")

NEED = {
    "en": {
        "sleep": "Because you said sleep has been hard lately.",
        "stress": "Because you said you have been feeling stressed.",
        "anxiety": "Because you said you have been feeling anxious or on edge.",
        "workload": "Because you said your workload has been heavy.",
        "isolation": "Because you said you have been feeling isolated.",
        "parenting": "Because you mentioned juggling family and work.",
        "low_mood": "Because you said your mood has been low.",
        "energy": "Because you said your energy has been low.",
    },
    "es": {
        "sleep": "Porque nos dijiste que te está costando dormir.",
        "stress": "Porque nos dijiste que te has sentido estresado/a.",
        "anxiety": "Porque nos dijiste que te has sentido con ansiedad o en tensión.",
        "workload": "Porque nos dijiste que tienes mucha carga de trabajo.",
        "isolation": "Porque nos dijiste que te has sentido aislado/a.",
        "parenting": "Porque mencionaste que compaginas familia y trabajo.",
        "low_mood": "Porque nos dijiste que tu ánimo ha estado bajo.",
        "energy": "Porque nos dijiste que te falta energía.",
    },
    "fr": {
        "sleep": "Parce que vous nous avez dit avoir du mal à dormir ces temps-ci.",
        "stress": "Parce que vous nous avez dit vous sentir stressé(e).",
        "anxiety": "Parce que vous nous avez dit vous sentir anxieux(se) ou tendu(e).",
        "workload": "Parce que vous nous avez dit que votre charge de travail est lourde.",
        "isolation": "Parce que vous nous avez dit vous sentir isolé(e).",
        "parenting": "Parce que vous avez évoqué la conciliation entre famille et travail.",
        "low_mood": "Parce que vous nous avez dit avoir le moral en baisse.",
        "energy": "Parce que vous nous avez dit manquer d'énergie.",
    },
}

TOPIC = {
    "en": {
        "sleep": "sleep",
        "stress": "stress",
        "anxiety": "anxiety",
        "workload": "workload",
        "isolation": "connection",
        "parenting": "parenting",
        "low_mood": "mood",
        "energy": "energy",
        "general": "mental health basics",
    },
    "es": {
        "sleep": "el sueño",
        "stress": "el estrés",
        "anxiety": "la ansiedad",
        "workload": "la carga de trabajo",
        "isolation": "la conexión con los demás",
        "parenting": "la crianza",
        "low_mood": "el estado de ánimo",
        "energy": "la energía",
        "general": "lo básico de la salud mental",
    },
    "fr": {
        "sleep": "le sommeil",
        "stress": "le stress",
        "anxiety": "l'anxiété",
        "workload": "la charge de travail",
        "isolation": "le lien aux autres",
        "parenting": "la parentalité",
        "low_mood": "le moral",
        "energy": "l'énergie",
        "general": "les bases de la santé mentale",
    },
}

FORMAT = {
    "en": {"text": "reading", "audio": "audio", "video": "video", "interactive": "interactive", "service": "service"},
    "es": {"text": "lectura", "audio": "audio", "video": "vídeo", "interactive": "interactivo", "service": "servicio"},
    "fr": {"text": "lecture", "audio": "audio", "video": "vidéo", "interactive": "interactif", "service": "service"},
}

TEMPLATES = {
    "en": {
        "topic": "Because you asked for resources about {topic}.",
        "format": "Because you prefer {format} resources.",
        "time": "It fits in the {minutes} minutes you said you have.",
        "helpful": "Because you found similar resources helpful.",
        "professional": (
            "Talking to someone can help when things have been hard for a while. It is free and confidential."
        ),
        "start": "A good place to start, for anyone.",
        "always": "Talk to someone whenever you need to: always available.",
        "fallback": "Not yet available in {wanted}; shown in {shown}.",
    },
    "es": {
        "topic": "Porque pediste recursos sobre {topic}.",
        "format": "Porque prefieres recursos en formato {format}.",
        "time": "Cabe en los {minutes} minutos que nos dijiste que tienes.",
        "helpful": "Porque recursos parecidos te resultaron útiles.",
        "professional": (
            "Hablar con alguien puede ayudar cuando las cosas llevan un tiempo siendo difíciles. "
            "Es gratuito y confidencial."
        ),
        "start": "Un buen punto de partida para cualquiera.",
        "always": "Habla con alguien cuando lo necesites: siempre disponible.",
        "fallback": "Aún no está disponible en {wanted}; se muestra en {shown}.",
    },
    "fr": {
        "topic": "Parce que vous avez demandé des ressources sur {topic}.",
        "format": "Parce que vous préférez le format {format}.",
        "time": "Cela tient dans les {minutes} minutes dont vous disposez.",
        "helpful": "Parce que des ressources semblables vous ont été utiles.",
        "professional": (
            "En parler à quelqu'un peut aider quand les choses sont difficiles depuis un moment. "
            "C'est gratuit et confidentiel."
        ),
        "start": "Un bon point de départ, pour tout le monde.",
        "always": "Parlez à quelqu'un quand vous en avez besoin : toujours disponible.",
        "fallback": "Pas encore disponible en {wanted} ; affiché en {shown}.",
    },
}

LANGUAGE_NAME = {
    "en": {"en": "English", "es": "Spanish", "fr": "French"},
    "es": {"en": "inglés", "es": "español", "fr": "francés"},
    "fr": {"en": "anglais", "es": "espagnol", "fr": "français"},
}


def text(lang: str, code: str, detail: str | None = None) -> str:
    """The reason ``code`` (with its detail: a need, topic, format or minutes) in ``lang``."""
    if code == "need":
        return NEED[lang][detail or ""]
    template = TEMPLATES[lang][code]
    if code == "topic":
        return template.format(topic=TOPIC[lang][detail or "general"])
    if code == "format":
        return template.format(format=FORMAT[lang][detail or "text"])
    if code == "time":
        return template.format(minutes=detail)
    return template


def fallback_note(lang: str, shown: str) -> str:
    names = LANGUAGE_NAME[lang]
    return TEMPLATES[lang]["fallback"].format(wanted=names.get(lang, lang), shown=names.get(shown, shown))
