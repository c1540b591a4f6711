from tests.testapp.discovery import IMPORTED

IMPORTED.append(__name__)
