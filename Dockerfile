# One image for every role; docker-compose.yml picks the role with the command.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
COPY migrations ./migrations
USER node
# Overridden per service: src/<role>/main.ts
CMD ["node", "--import", "tsx", "src/relay/main.ts"]
