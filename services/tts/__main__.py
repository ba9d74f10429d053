from services.tts.service import main

main()
