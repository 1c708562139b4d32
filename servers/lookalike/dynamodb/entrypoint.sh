#!/bin/bash
# The arguments are DynamoDB Local's (`-jar DynamoDBLocal.jar -inMemory -sharedDb`): ignored.
exec /opt/moto/bin/moto_server -H 0.0.0.0 -p 8000
